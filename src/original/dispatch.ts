/**
 * Runs one of the original blockdiff's tools (names.ts) with the original's arguments, descriptors and
 * environment (README.md, "Moving from the original blockdiff").
 */
import { runBlockdiffBackup } from "./blockdiff_backup.ts";
import { runBlockdiffDump } from "./blockdiff_dump.ts";
import { runBlockdiffMerge } from "./blockdiff_merge.ts";
import { runMysqllock } from "./mysqllock.ts";
import type { OriginalName } from "./names.ts";
import { runSshBlockdiffDump } from "./ssh_blockdiff_dump.ts";
import { runSshLvmDump } from "./ssh_lvm_dump.ts";
import { runOwn } from "./translate.ts";

const TOOLS: Record<OriginalName, (argv: string[]) => Promise<number>> = {
  blockdiff_dump: runBlockdiffDump,
  blockdiff_merge: runBlockdiffMerge,
  blockdiff_backup: (argv) => runOwn(() => runBlockdiffBackup(argv)),
  ssh_blockdiff_dump: runSshBlockdiffDump,
  ssh_lvm_dump: runSshLvmDump,
  mysqllock: runMysqllock,
};

/** Runs the tool `name` with its arguments (after the program name); resolves with the exit code. */
export function runOriginal(name: OriginalName, argv: string[]): Promise<number> {
  return TOOLS[name](argv);
}
