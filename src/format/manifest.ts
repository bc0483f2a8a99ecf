/**
 * `NAME.N.json`: what a generation is (ignored by the original tools). It carries a SHA-256 of its own
 * content (`checksum`), so a flipped bit in the manifest itself is detected too.
 */
import { createHash } from "node:crypto";
import { IntegrityError } from "../errors.ts";

export const MANIFEST_FORMAT = "blockdiff-manifest/1";

export interface MysqlCoordinates {
  binlogFile: string | null;
  binlogPosition: number | null;
  gtid: string | null;
  lockHeldMs: number;
}

/** How a generation's changed blocks were found (change tracking: src/tracking/). */
export interface ScanRecord {
  method: "full" | "thin_delta";
  /** Why a full scan where change tracking could have been used; null otherwise. */
  reason: string | null;
  /** Bytes actually read from the source. */
  bytesRead: number;
}

/** The thin LV snapshot kept after a generation: the next run's baseline for thin_delta. */
export interface BaselineRecord {
  /** The chain's identity on the database host (its baselines carry it as a tag). */
  chainId: string;
  vg: string;
  lv: string;
  /** The origin LV's UUID: a different LV of the same name is not this baseline's. */
  originUuid: string;
  pool: string;
  snapshot: string;
  thinId: number;
  /** The volume's size in bytes when the snapshot was taken. */
  size: number;
}

export interface Manifest {
  format: typeof MANIFEST_FORMAT;
  toolVersion: string;
  name: string;
  generation: number;
  source: string;
  sourceSize: number;
  blocksize: number;
  blocks: number;
  compression: string;
  compressionLevel: number;
  diffFile: string;
  digestFile: string;
  startedAt: string;
  finishedAt: string;
  blocksRead: number;
  blocksChanged: number;
  bytesWritten: number;
  diffSha256: string;
  digestSha256: string;
  mysql: MysqlCoordinates | null;
  /** Absent in manifests written before change tracking. */
  scan?: ScanRecord;
  baseline?: BaselineRecord | null;
  /** Carried from generation to generation (change tracking names baselines after it). */
  chainId?: string;
  /**
   * Generations `prune` removed whose blocks this generation's diff now holds (ascending): they are no
   * longer part of the chain. Absent when none.
   */
  absorbed?: number[];
  /** When `prune` last rewrote this generation's diff. */
  prunedAt?: string;
  checksum?: string;
}

/** What a generation the original tools wrote (they wrote no manifest) says of itself, in its files. */
export interface OriginalGeneration {
  name: string;
  generation: number;
  blocksize: number;
  blocks: number;
  /** The length of its last block (0 without blocks). */
  lastBlockLength: number;
  /** Its digest file's modification time (ISO). */
  finishedAt: string;
  digestFile: string;
  digestSha256: string;
  /** Its diff file: compression, size, SHA-256, and how many records (changed blocks) it holds. */
  diff: { compression: string; bytes: number; sha256: string; records: number };
  toolVersion: string;
}

/** A manifest for a generation the original tools wrote: its files' facts, its size from its last block. */
export function originalManifest(g: OriginalGeneration): Manifest {
  return {
    format: MANIFEST_FORMAT,
    toolVersion: g.toolVersion,
    name: g.name,
    generation: g.generation,
    source: "(written by the original blockdiff)",
    sourceSize: g.blocks === 0 ? 0 : (g.blocks - 1) * g.blocksize + g.lastBlockLength,
    blocksize: g.blocksize,
    blocks: g.blocks,
    compression: g.diff.compression,
    compressionLevel: 0,
    diffFile: "",
    digestFile: g.digestFile,
    startedAt: g.finishedAt,
    finishedAt: g.finishedAt,
    blocksRead: g.blocks,
    blocksChanged: g.diff.records,
    bytesWritten: g.diff.bytes,
    diffSha256: g.diff.sha256,
    digestSha256: g.digestSha256,
    mysql: null,
  };
}

function checksumOf(m: Manifest): string {
  const { checksum: _ignored, ...rest } = m;
  return createHash("sha256").update(JSON.stringify(rest)).digest("hex");
}

export function encodeManifest(m: Manifest): string {
  const withSum = { ...m, checksum: undefined };
  delete withSum.checksum;
  return JSON.stringify({ ...withSum, checksum: checksumOf(withSum) }, null, 2) + "\n";
}

const NUMBER_FIELDS = [
  "generation",
  "sourceSize",
  "blocksize",
  "blocks",
  "blocksRead",
  "blocksChanged",
  "bytesWritten",
] as const;
const STRING_FIELDS = [
  "name",
  "source",
  "compression",
  "diffFile",
  "digestFile",
  "diffSha256",
  "digestSha256",
] as const;

export function decodeManifest(text: string, what: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(text);
  } catch {
    throw new IntegrityError(`${what}: not valid JSON (corrupt manifest)`);
  }
  if (m === null || typeof m !== "object" || m.format !== MANIFEST_FORMAT) {
    throw new IntegrityError(`${what}: not a blockdiff manifest`);
  }
  for (const f of NUMBER_FIELDS) {
    if (!Number.isSafeInteger(m[f]) || m[f] < 0) {
      throw new IntegrityError(`${what}: field ${f} is missing or invalid`);
    }
  }
  for (const f of STRING_FIELDS) {
    if (typeof m[f] !== "string") throw new IntegrityError(`${what}: field ${f} is missing or invalid`);
  }
  if (m.checksum !== checksumOf(m)) throw new IntegrityError(`${what}: checksum mismatch (manifest corrupt)`);
  if (
    m.absorbed !== undefined &&
    (!Array.isArray(m.absorbed) ||
      !m.absorbed.every((g) => Number.isSafeInteger(g) && g >= 1 && g < m.generation))
  ) {
    throw new IntegrityError(`${what}: field absorbed is invalid`);
  }
  return m;
}
