/**
 * `blockdiff_merge FILE < diff`, the original's merge: `blockdiff merge FILE` (an uncompressed diff on
 * stdin, as the original took). The original had no options: a FILE that starts with `-` is a file.
 */
import { UsageError } from "../errors.ts";
import { localPath } from "./blockdiff_dump.ts";
import { type Outcome, runTranslated } from "./translate.ts";

const NAME = "blockdiff_merge";

export const BLOCKDIFF_MERGE_HELP = `usage: blockdiff_merge FILE < diff

blockdiff under the original blockdiff_merge's name: runs 'blockdiff merge FILE' (see blockdiff merge
--help): writes every block of the (uncompressed) diff on stdin into FILE, created if missing. For a
compressed diff or an fsync at the end, use blockdiff merge -z/--lzop/--zstd/--sync.`;

export function translateBlockdiffMerge(argv: string[]): Outcome {
  if (argv.length === 1 && (argv[0] === "--help" || argv[0] === "-h")) {
    return { print: BLOCKDIFF_MERGE_HELP, code: 0 };
  }
  if (argv.length !== 1 || argv[0] === "") throw new UsageError(`usage: ${NAME} FILE < diff`);
  return { args: ["merge", localPath(argv[0])] };
}

export function runBlockdiffMerge(argv: string[]): Promise<number> {
  return runTranslated(NAME, argv, translateBlockdiffMerge);
}
