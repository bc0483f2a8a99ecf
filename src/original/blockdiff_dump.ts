/**
 * `blockdiff_dump [--blocksize=N] [-z|--gzip|--lzop] [FILE] [5< old.md5] 6> new.md5 > diff`, the original's
 * low-level dump: `blockdiff dump` of FILE (a local path, even one that looks like host:/path) or stdin.
 * `--blocksize` becomes env BLOCKSIZE, the default dump reads, so an old digest's block size wins over it
 * without an error, as in the original.
 */
import { parseArgs } from "../cli/args.ts";
import { UsageError } from "../errors.ts";
import { MAX_BLOCKSIZE } from "../format/digest.ts";
import { type Outcome, runTranslated } from "./translate.ts";

const NAME = "blockdiff_dump";

export const BLOCKDIFF_DUMP_HELP =
  `usage: blockdiff_dump [--blocksize=N] [-z|--gzip|--lzop] [FILE] [5< old.md5] 6> new.md5 > diff

blockdiff under the original blockdiff_dump's name: runs 'blockdiff dump' (see blockdiff dump --help).
Reads FILE (or stdin), writes the diff to stdout and the new digest to fd 6; fd 5 is the old digest.

  --blocksize=N   block size without an old digest (default env BLOCKSIZE, else 16384); an old
                  digest's block size wins, as in the original
  -z, --gzip      gzip the diff
  --lzop          compress the diff with lzop (runs lzop)
  --version       blockdiff's version
  -h, --help      this help`;

/** The original's command line as `blockdiff dump`'s. */
export function translateBlockdiffDump(argv: string[]): Outcome {
  const p = parseArgs(argv, [
    { name: "blocksize", kind: "value" },
    { name: "gzip", short: "z", kind: "flag" },
    { name: "lzop", kind: "flag" },
    { name: "help", short: "h", kind: "flag" },
    { name: "version", kind: "flag" },
  ], NAME);
  if (p.opts.has("help")) return { print: BLOCKDIFF_DUMP_HELP, code: 0 };
  if (p.opts.has("version")) return { args: ["--version"] };
  const files = [...p.positionals, ...p.rest];
  if (files.length > 1) {
    throw new UsageError(
      `usage: ${NAME} [--blocksize=N] [-z|--gzip|--lzop] [FILE] 5< old.md5 6> new.md5 > diff`,
    );
  }
  const blocksize = p.opts.get("blocksize");
  if (blocksize !== undefined && !validBlockSize(blocksize)) {
    throw new UsageError(
      `${NAME}: --blocksize must be a number of bytes from 1 to ${MAX_BLOCKSIZE}, not '${blocksize}'`,
    );
  }
  return {
    args: [
      "dump",
      ...(p.opts.has("gzip") ? ["--gzip"] : []),
      ...(p.opts.has("lzop") ? ["--lzop"] : []),
      ...files.map(localPath),
    ],
    env: typeof blocksize === "string" ? { BLOCKSIZE: blocksize } : {},
  };
}

function validBlockSize(v: string | true): boolean {
  return typeof v === "string" && /^\d+$/.test(v) && Number(v) >= 1 && Number(v) <= MAX_BLOCKSIZE;
}

/** A path `dump` takes as the local file it is ("-x" is not an option, "a:/b" not a remote SOURCE). */
export function localPath(p: string): string {
  return p.startsWith("/") || p.startsWith("./") || p.startsWith("../") ? p : `./${p}`;
}

export function runBlockdiffDump(argv: string[]): Promise<number> {
  return runTranslated(NAME, argv, translateBlockdiffDump);
}
