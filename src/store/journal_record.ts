/**
 * `NAME.journal`, the chain's change in progress, as a record: a backup's commit of a new generation
 * (journal.ts) or a prune's fold of removed generations into a kept one (fold_commit.ts). Readers look at
 * a fold in progress too (chain.ts), so reading it needs nothing but the path.
 */
import * as fs from "node:fs";
import { describeIoError, IntegrityError } from "../errors.ts";
import { decodeManifest, encodeManifest, type Manifest } from "../format/manifest.ts";

export const JOURNAL_FORMAT = "blockdiff-journal/1";

/** A backup publishing `generation` over `.ver` = `previous`. */
export interface BackupRecord {
  op: "backup";
  generation: number;
  previous: number;
  /** File names (in the chain's directory) the commit puts in place. */
  files: string[];
}

/** A prune replacing generation `generation`'s diff and manifest with ones that hold `removes` too. */
export interface FoldRecord {
  op: "fold";
  generation: number;
  /** The generations whose files go once the new manifest is in place. */
  removes: number[];
  /** The new diff, written and fsynced under a temporary name before the journal. */
  staged: string;
  /** Its final name, and the name of the diff it replaces (different when the compression changes). */
  diffFile: string;
  oldDiffFile: string;
  /** The new manifest (its diffSha256 and bytesWritten describe the staged diff). */
  manifest: Manifest;
}

export type JournalRecord = BackupRecord | FoldRecord;

/** Where a chain's journal is and what its files are called. */
export interface JournalPlace {
  journalPath: string;
  name: string;
}

export function encodeJournal(r: JournalRecord): string {
  const body = r.op === "fold" ? { ...r, manifest: encodeManifest(r.manifest) } : r;
  return JSON.stringify({ format: JOURNAL_FORMAT, ...body }) + "\n";
}

/** The journal, or null when there is none; a garbled one is corruption. */
export function readJournal(place: JournalPlace): JournalRecord | null {
  let text: string;
  try {
    text = fs.readFileSync(place.journalPath, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    throw describeIoError(`reading ${place.journalPath}`, err);
  }
  const corrupt = () => new IntegrityError(`${place.journalPath}: not a blockdiff journal (corrupt)`);
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(text);
  } catch {
    throw corrupt();
  }
  const name = (f: unknown) => typeof f === "string" && f.startsWith(place.name + ".") && !f.includes("/");
  const gens = (a: unknown) => Array.isArray(a) && a.every((g) => Number.isSafeInteger(g) && g > 0);
  if (j?.format !== JOURNAL_FORMAT || !Number.isSafeInteger(j.generation)) throw corrupt();
  if (
    j.op === "backup" && Number.isSafeInteger(j.previous) && Array.isArray(j.files) && j.files.every(name)
  ) {
    return {
      op: "backup",
      generation: j.generation as number,
      previous: j.previous as number,
      files: j.files,
    };
  }
  if (
    j.op === "fold" && gens(j.removes) && name(j.staged) && name(j.diffFile) && name(j.oldDiffFile) &&
    typeof j.manifest === "string"
  ) {
    const manifest = decodeManifest(j.manifest, place.journalPath);
    if (manifest.generation !== j.generation || manifest.diffFile !== j.diffFile) throw corrupt();
    return {
      op: "fold",
      generation: j.generation as number,
      removes: j.removes as number[],
      staged: j.staged as string,
      diffFile: j.diffFile as string,
      oldDiffFile: j.oldDiffFile as string,
      manifest,
    };
  }
  throw corrupt();
}

/** The fold in progress, for readers: null when there is none or the journal cannot be read right now. */
export function foldInProgress(place: JournalPlace): FoldRecord | null {
  try {
    const r = readJournal(place);
    return r?.op === "fold" ? r : null;
  } catch {
    return null;
  }
}
