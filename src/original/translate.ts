/**
 * Running blockdiff under an original tool's name: the tool's command line is translated into one of
 * blockdiff's own (a command and its options, and the environment it reads), which then runs as if typed;
 * there is no second implementation of any tool here. Errors of the translation are one line and exit 2,
 * as blockdiff's own usage errors.
 */
import process from "node:process";
import { runCleanups } from "../cleanup.ts";
import { main, reportFailure } from "../cli/main.ts";
import { printOut, stdoutFlushed } from "../cli/output.ts";
import { BlockdiffError } from "../errors.ts";
import { shellCommand } from "../ssh/quote.ts";

export interface Translation {
  /** blockdiff's arguments, command first (`["dump", "--gzip", "root@db1:/dev/vg0/lv"]`). */
  args: string[];
  /** Environment set (a string) or removed (null) for blockdiff's command and what it runs. */
  env?: Record<string, string | null>;
  /**
   * Variables put back as they were once the command has read them (it reads its options and environment
   * before its first wait), so the processes it starts do not inherit them (the password of --password).
   */
  restoreAfterStart?: string[];
  /** Variables whose value the VERBOSE line does not show. */
  secret?: string[];
  /** Lines for stderr before the command runs ("warning: ..."). */
  notes?: string[];
}

/** What a translation gives: blockdiff's command, or text to print (--help) and an exit code. */
export type Outcome = Translation | { print: string; code: number };

/** Runs `translate(argv)`; resolves with the exit code, as main() does. */
export async function runTranslated(
  name: string,
  argv: string[],
  translate: (argv: string[]) => Outcome,
): Promise<number> {
  let t: Outcome;
  try {
    t = translate(argv);
  } catch (err) {
    // the shared option parser points at `blockdiff NAME --help`; here it is `NAME --help`
    if (err instanceof BlockdiffError) {
      err.message = err.message.replace(`see blockdiff ${name} `, `see ${name} `);
    }
    return failed(err);
  }
  if ("print" in t) {
    printOut(t.print.endsWith("\n") ? t.print : t.print + "\n");
    await stdoutFlushed();
    return t.code;
  }
  for (const line of t.notes ?? []) process.stderr.write(`blockdiff: ${line}\n`);
  const before = new Map(Object.keys(t.env ?? {}).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(t.env ?? {})) {
    if (v === null) delete process.env[k];
    else process.env[k] = v;
  }
  if (process.env.VERBOSE) {
    const shown = Object.entries(t.env ?? {}).filter(([, v]) => v !== null).map(([k, v]) =>
      `${k}=${t.secret?.includes(k) ? "..." : v}`
    );
    process.stderr.write(
      `blockdiff: ${name} runs: ${[...shown, shellCommand(["blockdiff", ...t.args])].join(" ")}\n`,
    );
  }
  const running = main(t.args);
  for (const k of t.restoreAfterStart ?? []) {
    const v = before.get(k);
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return await running;
}

/** Runs a tool that is more than a translation (blockdiff_backup); its errors end as main()'s do. */
export async function runOwn(run: () => Promise<number>): Promise<number> {
  try {
    return await run();
  } catch (err) {
    return failed(err);
  } finally {
    await stdoutFlushed();
  }
}

function failed(err: unknown): number {
  runCleanups();
  return reportFailure(err);
}
