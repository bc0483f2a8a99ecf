/**
 * A prune's fold, published so that the chain is whole at every instant, for readers and after a crash:
 * the new diff of the kept generation is written and fsynced under a temporary name; the journal records
 * it with the new manifest; the diff is renamed into place (the removed generations are still members, so
 * the chain restores the same with the old diff or the new one); the new manifest is put in place (from
 * then on the removed generations are absorbed: no longer members); the replaced diff (when the compression
 * changed its name) and the removed generations' files are deleted; the journal goes last. Once the
 * journal is written the fold only goes forward: the next command that writes finishes it (journal.ts).
 */
import * as fs from "node:fs";
import { sha256OfFile } from "../io/file_sha.ts";
import * as path from "node:path";
import { describeIoError, IntegrityError } from "../errors.ts";
import { encodeManifest } from "../format/manifest.ts";
import type { Chain } from "./chain.ts";
import { fsyncDir, replaceFile } from "./commit.ts";
import { encodeJournal, type FoldRecord } from "./journal_record.ts";

/** Publishes a fold whose new diff is written and fsynced as `r.staged` (the caller holds the lock). */
export function commitFold(chain: Chain, r: Omit<FoldRecord, "op">): void {
  replaceFile(chain.journalPath, encodeJournal({ op: "fold", ...r }));
  fsyncDir(chain.dir);
  if (!finishFold(chain, { op: "fold", ...r })) {
    throw new IntegrityError(`${r.staged} vanished before it was published; the prune was rolled back`);
  }
}

/** Finishes a fold a dead run left; what it did, for the log. */
export function recoverFold(chain: Chain, r: FoldRecord): string {
  const removed = r.removes.length === 1
    ? `generation ${r.removes[0]}`
    : `generations ${r.removes.join(", ")}`;
  return finishFold(chain, r)
    ? `finished the interrupted prune of ${removed} into generation ${r.generation}`
    : `rolled back the interrupted prune of ${removed} (the new diff of generation ${r.generation} was gone)`;
}

/** The steps after the journal, each one safe to repeat; false when the new diff was never published. */
function finishFold(chain: Chain, r: FoldRecord): boolean {
  const at = (f: string) => path.join(chain.dir, f);
  const staged = at(r.staged), final = at(r.diffFile);
  if (fs.existsSync(staged)) {
    if (r.diffFile !== r.oldDiffFile && fs.existsSync(final)) {
      throw new IntegrityError(
        `${final} exists but the prune in progress was to create it; nothing was changed ` +
          `(move it away, then run the command again)`,
      );
    }
    rename(staged, final);
    fsyncDir(chain.dir);
  } else if (!holds(final, r.manifest.bytesWritten, r.manifest.diffSha256)) {
    removeJournal(chain);
    return false;
  }
  replaceFile(chain.manifestPath(r.generation), encodeManifest(r.manifest));
  fsyncDir(chain.dir);
  if (r.oldDiffFile !== r.diffFile) remove(at(r.oldDiffFile));
  for (const g of r.removes) for (const f of chain.generationPaths(g)) remove(f);
  fsyncDir(chain.dir);
  removeJournal(chain);
  return true;
}

/** Done: a journal that cannot be removed is finished again, harmlessly, by the next command that writes. */
function removeJournal(chain: Chain): void {
  try {
    fs.unlinkSync(chain.journalPath);
  } catch { /* see above */ }
}

/** Whether file `p` has exactly `size` bytes and SHA-256 `sha`. */
function holds(p: string, size: number, sha: string): boolean {
  try {
    if (fs.statSync(p).size !== size) return false;
    return sha256OfFile(p) === sha;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw describeIoError(`reading ${p}`, err);
  }
}

function rename(from: string, to: string): void {
  try {
    fs.renameSync(from, to);
  } catch (err) {
    throw describeIoError(`renaming ${from}`, err);
  }
}

function remove(p: string): void {
  try {
    fs.unlinkSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw describeIoError(`removing ${p}`, err);
  }
}
