/**
 * The one hot loop: read the source in large chunks, hash every block, compare with the old digest,
 * emit changed blocks and the new digest. Used by local backups, `blockdiff dump` and the remote agent.
 */
import { IntegrityError } from "../errors.ts";
import { DIGEST_SIZE } from "../format/digest.ts";
import { type DigestCursor, sameDigestAt } from "../format/digest_cursor.ts";
import { type ByteSource, readFull } from "../io/byte_source.ts";
import type { BlockHasher } from "./hasher.ts";
import { sharedBytes } from "../io/bytes.ts";

export interface DumpSinks {
  /** A changed block (a view valid until the call returns or its promise resolves). */
  changed(offset: number, block: Uint8Array): void | Promise<void>;
  /** The digests of consecutive blocks, in order (a view valid until the promise resolves). */
  digests(chunk: Uint8Array): Promise<void>;
}

/** Block indices [start, end). */
export interface BlockRange {
  start: number;
  end: number;
}

/**
 * Change tracking (src/tracking/): only the blocks of `ranges` (in increasing order, not overlapping) may
 * differ from the old digest; only they are read (positioned reads of a source of `size` bytes), the digests
 * of all others are copied from the old digest. The outputs are those of a full scan of the same source.
 */
export interface TrackedBlocks {
  ranges: BlockRange[];
  size: number;
  readAt(buf: Uint8Array, len: number, position: number): Promise<number>;
}

export interface DumpOptions {
  source: ByteSource;
  blocksize: number;
  /** Digests of the previous generation; null for a full dump. */
  oldDigest: DigestCursor | null;
  hasher: BlockHasher;
  sinks: DumpSinks;
  onProgress?: (bytesRead: number) => void;
  /** Bytes per read; rounded to whole blocks. */
  chunkBytes?: number;
  /** Read only these blocks (needs `oldDigest`); all of the source when absent. */
  tracked?: TrackedBlocks;
}

export interface DumpResult {
  /** The source's size (also when change tracking read less of it). */
  bytesRead: number;
  blocks: number;
  blocksChanged: number;
  /** Length of the last block (0 for an empty source). */
  lastBlockLength: number;
  /** What was actually read: all of it in a full scan. */
  scanned: { blocks: number; bytes: number };
}

/**
 * A chunk of blocks read into a buffer: consecutive segments of it hold runs of consecutive blocks (one
 * segment for a sequential read; several ranges gathered for change tracking). `n`: bytes in the buffer.
 */
interface Chunk {
  segments: { first: number; count: number }[];
  n: number;
}

/** Where the next chunk of blocks comes from; null at the end. */
type ChunkReader = (buf: Uint8Array) => Promise<Chunk | null>;

export async function dumpBlocks(o: DumpOptions): Promise<DumpResult> {
  const bs = o.blocksize;
  const perChunk = Math.max(1, Math.floor((o.chunkBytes ?? 2 << 20) / bs)); // 4 MiB: +5 MB RSS, no faster
  if (o.tracked && !o.oldDigest) throw new Error("change tracking needs the old digest");
  const total = o.tracked ? Math.ceil(o.tracked.size / bs) : null;
  const read = o.tracked ? trackedChunks(o.tracked, bs, perChunk) : sequentialChunks(o.source, bs);
  // Two buffers: the next chunk is read while the workers hash this one.
  let cur = sharedBytes(perChunk * bs), next = sharedBytes(perChunk * bs);
  const digests = sharedBytes(perChunk * DIGEST_SIZE);
  let blocks = 0, changed = 0, scannedBlocks = 0, scannedBytes = 0, lastLen = 0;
  const oldDigests = o.tracked ? new Uint8Array(perChunk * DIGEST_SIZE) : digests;
  /** Unchanged blocks up to `upTo`: their digests as the old digest has them. */
  const copyOld = async (upTo: number) => {
    while (blocks < upTo) {
      const count = Math.min(perChunk, upTo - blocks);
      for (let j = 0; j < count; j++) {
        const d = await o.oldDigest!.get(blocks + j);
        if (!d) {
          throw new IntegrityError(`the old digest ends at block ${blocks + j}, before the source's end`);
        }
        oldDigests.set(d, j * DIGEST_SIZE);
      }
      await o.sinks.digests(oldDigests.subarray(0, count * DIGEST_SIZE));
      blocks += count;
      o.onProgress?.(Math.min(blocks * bs, o.tracked!.size));
    }
  };
  let reading = read(cur);
  for (;;) {
    const chunk = await reading;
    if (chunk === null) break;
    const { n } = chunk;
    // Start reading the next chunk, but emit this one as soon as it is hashed (a slow source such as a
    // pipe must not hold back what was already read).
    reading = read(next);
    reading.catch(() => {}); // observed at the top of the next iteration
    await o.hasher.hashBlocks(cur, n, bs, digests);
    let j = 0; // block of the buffer
    for (const { first, count } of chunk.segments) {
      if (first > blocks) await copyOld(first);
      for (let k = 0; k < count; k++, j++) {
        const old = o.oldDigest ? await o.oldDigest.get(first + k) : null;
        if (old === null || !sameDigestAt(old, digests, j * DIGEST_SIZE)) {
          changed++;
          const p = o.sinks.changed((first + k) * bs, cur.subarray(j * bs, Math.min((j + 1) * bs, n)));
          if (p) await p;
        }
      }
      await o.sinks.digests(digests.subarray((j - count) * DIGEST_SIZE, j * DIGEST_SIZE));
      blocks = first + count;
    }
    scannedBlocks += j;
    scannedBytes += n;
    lastLen = n - (j - 1) * bs;
    o.onProgress?.(blocks * bs);
    [cur, next] = [next, cur];
  }
  if (total !== null) {
    await copyOld(total);
    lastLen = total ? o.tracked!.size - (total - 1) * bs : 0;
  }
  const size = total !== null ? o.tracked!.size : scannedBytes;
  return {
    bytesRead: size,
    blocks,
    blocksChanged: changed,
    lastBlockLength: lastLen,
    scanned: { blocks: scannedBlocks, bytes: scannedBytes },
  };
}

/** The whole source, in order: a short read is its end. */
function sequentialChunks(source: ByteSource, bs: number): ChunkReader {
  let first = 0, ended = false;
  return async (buf) => {
    if (ended) return null;
    const n = await readFull(source, buf, 0, buf.length);
    if (n < buf.length) ended = true;
    if (n === 0) return null;
    const count = Math.ceil(n / bs);
    const chunk = { segments: [{ first, count }], n };
    first += count;
    return chunk;
  };
}

/**
 * The blocks of the tracked ranges (clamped to the source), gathered into chunks: the ranges that fit a
 * buffer are read into it together, by positioned reads in parallel (a short one is an error), so that
 * many small ranges cost as few hashing rounds as large ones.
 */
function trackedChunks(t: TrackedBlocks, bs: number, perChunk: number): ChunkReader {
  const total = Math.ceil(t.size / bs);
  const ranges = t.ranges.map((r) => ({ start: r.start, end: Math.min(r.end, total) })).filter((r) =>
    r.start < r.end
  );
  let i = 0, at = ranges[0]?.start ?? 0;
  const readSpan = async (buf: Uint8Array, len: number, position: number) => {
    for (let got = 0; got < len;) {
      const n = await t.readAt(buf.subarray(got), len - got, position + got);
      if (n === 0) throw new Error(`the source ended at byte ${position + got}, before its size ${t.size}`);
      got += n;
    }
  };
  return async (buf) => {
    const segments: Chunk["segments"] = [], reads: Promise<void>[] = [];
    let used = 0, n = 0;
    while (i < ranges.length && used < perChunk) {
      if (at >= ranges[i].end) {
        at = ranges[++i]?.start ?? at;
        continue;
      }
      const count = Math.min(perChunk - used, ranges[i].end - at);
      const len = Math.min(count * bs, t.size - at * bs);
      reads.push(readSpan(buf.subarray(n, n + len), len, at * bs));
      segments.push({ first: at, count });
      used += count;
      n += len;
      at += count;
    }
    await Promise.all(reads);
    return segments.length ? { segments, n } : null;
  };
}
