/**
 * The one block-size rule of `backup` and `dump`: an existing chain (or old digest) keeps its block size and
 * a different `--block-size` is an error; otherwise `--block-size`, else env BLOCKSIZE, else 16384. A bad
 * value in either is a usage error (exit 2); a bad block size read from a file is corruption (exit 3).
 */
import { UsageError } from "../errors.ts";
import { DEFAULT_BLOCKSIZE, MAX_BLOCKSIZE } from "../format/digest.ts";

export interface BlockSizeInputs {
  /** `--block-size` as given ("16384", "16k", "1m"). */
  option: string | undefined;
  /** Env BLOCKSIZE (the original's; a plain number). Empty counts as unset. */
  env: string | undefined;
}

/**
 * Checks both inputs now (so a bad one fails before any work) and returns the rule, which gets the existing
 * block size (null: none) and what it belongs to, for the message ("chain db", "the old digest").
 */
export function blockSizeRule(i: BlockSizeInputs): (existing: number | null, owner?: string) => number {
  const option = i.option === undefined ? null : parseSize(i.option, "--block-size", true);
  const env = i.env ? parseSize(i.env, "BLOCKSIZE", false) : null;
  return (existing, owner = "the old digest") => {
    if (existing === null) return option ?? env ?? DEFAULT_BLOCKSIZE;
    if (option !== null && option !== existing) {
      throw new UsageError(
        `--block-size ${option} conflicts with ${owner}, whose block size is ${existing}; ` +
          `start a new chain to change it`,
      );
    }
    return existing;
  };
}

function parseSize(v: string, what: string, suffixes: boolean): number {
  const m = (suffixes ? /^(\d+)([kKmM]?)$/ : /^(\d+)()$/).exec(v.trim());
  const n = m ? Number(m[1]) * (m[2] === "" ? 1 : /k/i.test(m[2]) ? 1024 : 1024 * 1024) : NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > MAX_BLOCKSIZE) {
    throw new UsageError(
      `${what} must be a block size from 1 to ${MAX_BLOCKSIZE} bytes${
        suffixes ? " (16384, 16k, 1m)" : ""
      }, ` +
        `not '${v}'`,
    );
  }
  return n;
}
