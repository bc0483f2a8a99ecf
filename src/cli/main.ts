/** Dispatches `blockdiff COMMAND ...`, prints one line on stderr for every failure, returns the exit code. */
import { printOut, stdoutFlushed } from "./output.ts";
import process from "node:process";
import { installSignalHandlers, runCleanups } from "../cleanup.ts";
import { BlockdiffError, EXIT } from "../errors.ts";
import { VERSION } from "../version.ts";
import { parseArgs } from "./args.ts";
import { logEarlyFailure } from "./log_outcome.ts";
import { backupCommand } from "./backup.ts";
import { copyCommand } from "./copy.ts";
import type { Command } from "./command.ts";
import { dumpCommand } from "./dump.ts";
import { listCommand } from "./list.ts";
import { mergeCommand } from "./merge.ts";
import { mysqllockCommand } from "./mysqllock.ts";
import { pruneCommand } from "./prune.ts";
import { forgetBaselineCommand } from "./forget_baseline.ts";
import { repairCommand } from "./repair.ts";
import { restoreCommand } from "./restore.ts";
import { snapshotGateCommand } from "./snapshot_gate.ts";
import { statusCommand } from "./status.ts";
import { verifyCommand } from "./verify.ts";

const COMMANDS: Command[] = [
  backupCommand,
  restoreCommand,
  verifyCommand,
  listCommand,
  pruneCommand,
  copyCommand,
  statusCommand,
  repairCommand,
  forgetBaselineCommand,
  dumpCommand,
  mergeCommand,
  mysqllockCommand,
  snapshotGateCommand,
];

/** Commands other programs run (a --snapshot-wrapper's gate): dispatched, but not in the usage list. */
const INTERNAL = new Set<Command>([snapshotGateCommand]);

function usage(): string {
  const listed = COMMANDS.filter((c) => !INTERNAL.has(c));
  const width = Math.max(...listed.map((c) => c.name.length));
  return `blockdiff ${VERSION}: block-level full and incremental backups

usage: blockdiff COMMAND [options]   (blockdiff COMMAND --help for each)

commands:
${listed.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join("\n")}

exit codes: 0 ok, 1 failure, 2 usage error, 3 corrupt chain or data, 4 chain in use by another run,
            5 (status) a chain is stale or its last run failed or died,
            129/130/143 interrupted by SIGHUP/SIGINT/SIGTERM`;
}

/** Runs one command; resolves with its exit code once what it printed on stdout has been handed over. */
export async function main(argv: string[]): Promise<number> {
  const code = await dispatch(argv);
  await stdoutFlushed();
  return code;
}

async function dispatch(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    const cmd = COMMANDS.find((c) => c.name === rest[0]);
    printOut((cmd ? cmd.help : usage()) + "\n");
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === "--version" || name === "version") {
    printOut(`blockdiff ${VERSION}\n`);
    return EXIT.ok;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  try {
    if (!cmd) throw new BlockdiffError(`unknown command '${name}' (see blockdiff --help)`, EXIT.usage);
    const args = parseArgs(rest, cmd.options, cmd.name);
    if (args.opts.has("help")) {
      printOut(cmd.help + "\n");
      return EXIT.ok;
    }
    installSignalHandlers();
    return await cmd.run(args);
  } catch (err) {
    runCleanups();
    if (cmd?.options.some((o) => o.name === "log")) logEarlyFailure(rest, cmd.name, err);
    return reportFailure(err);
  }
}

/** Prints a failure's one line on stderr (with VERBOSE, an unexpected one's stack too); its exit code. */
export function reportFailure(err: unknown): number {
  if (err instanceof BlockdiffError) {
    process.stderr.write(`blockdiff: ${err.message}\n`);
    return err.exitCode;
  }
  const e = err as Error;
  process.stderr.write(`blockdiff: internal error: ${e?.message ?? String(err)}\n`);
  if (process.env.VERBOSE) process.stderr.write(`${e?.stack}\n`);
  return EXIT.failure;
}
