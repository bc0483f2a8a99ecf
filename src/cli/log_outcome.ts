/**
 * `--log FILE`: every run that starts writes its outcome there, whatever ended it: the command logs its
 * success, this logs a failure (with its exit code), an interruption by a signal, and a command line that
 * did not parse.
 */
import { onCleanup } from "../cleanup.ts";
import { BlockdiffError, EXIT } from "../errors.ts";
import { RunLog } from "../log/run_log.ts";

const logged = new WeakSet<object>();

export async function logOutcome(
  log: RunLog,
  what: string,
  run: () => Promise<number>,
  /** What the interruption leaves (default: nothing published); asked when it happens. */
  o: { interrupted?: () => string } = {},
): Promise<number> {
  const unregister = onCleanup((signal) => {
    const after = o.interrupted?.() ?? "nothing of this run was published";
    if (signal) log.tryInfo(`${what} INTERRUPTED by ${signal}: ${after}`);
  });
  try {
    return await run();
  } catch (err) {
    logFailure(log, what, err);
    throw err;
  } finally {
    unregister();
  }
}

/** A failure before the command ran (its command line): logged if `--log FILE` can be found in `argv`. */
export function logEarlyFailure(argv: string[], command: string, err: unknown): void {
  if (logged.has(err as object)) return;
  let file: string | undefined;
  for (let i = 0; i < argv.length && argv[i] !== "--"; i++) {
    if (argv[i] === "--log") file = argv[i + 1];
    else if (argv[i].startsWith("--log=")) file = argv[i].slice(6);
  }
  if (file) logFailure(new RunLog(file), command, err);
}

function logFailure(log: RunLog, what: string, err: unknown): void {
  const code = err instanceof BlockdiffError ? err.exitCode : EXIT.failure;
  const message = err instanceof BlockdiffError ? err.message : `internal error: ${(err as Error)?.message}`;
  log.tryInfo(`${what} FAILED (exit ${code}): ${message}`);
  if (err && typeof err === "object") logged.add(err);
}
