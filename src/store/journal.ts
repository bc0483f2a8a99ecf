/**
 * `NAME.journal`: the commit in progress. A backup writes it (temp, fsync, rename) before it puts the new
 * generation's files in place and removes it once `NAME.ver` names that generation. If the run dies in
 * between, the next command that writes (under the chain's lock) finishes the commit when every file the
 * journal names is there and matches the manifest (a complete generation is never removed), or removes
 * those files when not; `.ver` ends up naming the last complete generation either way. Without a journal,
 * a complete generation past `.ver` is somebody's doing (a `.ver` put back by hand): chain_state.ts refuses.
 * A prune's journal (fold_commit.ts) is finished the same way, by the next command that writes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { IntegrityError } from "../errors.ts";
import type { Chain } from "./chain.ts";
import { manifestMatchesSizes, scanChain } from "./chain_state.ts";
import { fsyncDir, replaceFile, writeVersion } from "./commit.ts";
import { recoverFold } from "./fold_commit.ts";
import { type BackupRecord, encodeJournal, readJournal } from "./journal_record.ts";

export type CommitRecord = Omit<BackupRecord, "op">;

/** Records the commit about to happen (durably: the directory is synced). */
export function beginCommit(chain: Chain, r: CommitRecord): void {
  replaceFile(chain.journalPath, encodeJournal({ op: "backup", ...r }));
  fsyncDir(chain.dir);
}

/**
 * The commit is over (done or undone). A journal that cannot be removed is left to the next writer, which
 * finds the commit finished (or undoes it) and removes it then.
 */
export function endCommit(chain: Chain): void {
  try {
    fs.rmSync(chain.journalPath, { force: true });
  } catch { /* see above */ }
}

/**
 * Finishes or undoes a commit or a prune's fold that a dead run left (the caller holds the chain's lock).
 * Returns what it did, for the log, or null when there was nothing to do.
 */
export function recoverCommit(chain: Chain): string | null {
  const r = readJournal(chain);
  if (!r) return null;
  if (r.op === "fold") return recoverFold(chain, r);
  const ver = chain.readVersionFile() ?? 0;
  let done: string;
  if (ver === r.generation) {
    done = `the interrupted commit of generation ${r.generation} had completed`;
  } else if (ver === r.previous) {
    const files = scanChain(chain).generations.find((g) => g.generation === r.generation);
    const complete = files !== undefined && manifestMatchesSizes(chain, files) &&
      r.files.every((f) => fs.existsSync(path.join(chain.dir, f)));
    if (complete) {
      writeVersion(chain, r.generation);
      done = `finished the interrupted commit of generation ${r.generation} (its files were complete)`;
    } else {
      for (const f of r.files) fs.rmSync(path.join(chain.dir, f), { force: true });
      fsyncDir(chain.dir);
      done = `rolled back the interrupted commit of generation ${r.generation} (its files were incomplete)`;
    }
  } else {
    throw new IntegrityError(
      `${chain.journalPath} records a commit of generation ${r.generation} over ${r.previous}, but ` +
        `${chain.name}.ver says ${ver}; nothing was changed (see 'blockdiff repair ${chain.path("")}')`,
    );
  }
  endCommit(chain);
  return done;
}
