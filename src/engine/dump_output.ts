/** Where a dump's output goes: diff (through the compressor) and digest, each to a writable stream. */
import { createHash } from "node:crypto";
import type { Writable } from "node:stream";
import { compressInto, type Compression } from "../compress/codec.ts";
import { DiffWriter } from "../format/diff.ts";
import { encodeBlocksize } from "../format/digest.ts";
import type { DigestCursor } from "../format/digest_cursor.ts";
import type { ByteSource } from "../io/byte_source.ts";
import { ChunkBuffer, streamFinished, writeConsumed } from "../io/sink.ts";
import { dumpBlocks, type DumpResult, type DumpSinks, type TrackedBlocks } from "./block_loop.ts";
import type { Parallelism } from "./parallel.ts";
import type { PieceCompressor } from "../compress/piece.ts";

export interface DumpOutput {
  sinks: DumpSinks;
  /** Writes both headers. */
  begin(blocksize: number): Promise<void>;
  /** Flushes, ends both streams and waits until they are written (and fsynced when they do that). */
  finish(): Promise<void>;
  /** Tears the streams down after a failure. */
  abort(): void;
}

export interface DumpOutputOptions {
  diffOut: Writable;
  digestOut: Writable;
  compression: Compression;
  level: number;
  /** Where gzip and zstd pieces are compressed (worker threads). */
  pieces: PieceCompressor;
}

export function createDumpOutput(o: DumpOutputOptions): DumpOutput {
  const { diffOut, digestOut, compression, level, pieces } = o;
  const pipe = compressInto(compression, level, diffOut, pieces);
  const digestDone = streamFinished(digestOut);
  let rootCause: unknown = null;
  pipe.done.catch((e) => rootCause ??= e);
  digestDone.catch((e) => rootCause ??= e);

  /** Prefers the stream's own error (ENOSPC...) over the "write after destroy" it causes upstream. */
  const guarded = async (fn: () => void | Promise<void>) => {
    try {
      await fn();
    } catch (err) {
      await new Promise((r) => setImmediate(r));
      throw rootCause ?? err;
    }
  };
  const diffBuf = new ChunkBuffer((c) => writeConsumed(pipe.head, c));
  const digestBuf = new ChunkBuffer((c) => writeConsumed(digestOut, c));
  const diff = new DiffWriter((b) => diffBuf.write(b));

  return {
    sinks: {
      changed: (offset, block) => {
        const p = diff.record(offset, block); // errors can only come from a flush, which is async
        if (p) return guarded(() => p);
      },
      digests: (chunk) => guarded(() => digestBuf.write(chunk)),
    },
    begin: (bs) =>
      guarded(async () => {
        await diff.header(bs);
        await digestBuf.write(encodeBlocksize(bs));
      }),
    finish: () =>
      guarded(async () => {
        await diffBuf.drain();
        await digestBuf.drain();
        pipe.head.end();
        digestOut.end();
        await Promise.all([pipe.done, digestDone]);
      }),
    abort: () => {
      pipe.head.destroy();
      diffOut.destroy();
      digestOut.destroy();
    },
  };
}

export interface DumpToStreams {
  source: ByteSource;
  blocksize: number;
  oldDigest: DigestCursor | null;
  par: Parallelism;
  diffOut: Writable;
  digestOut: Writable;
  compression: Compression;
  level: number;
  onProgress?: (bytesRead: number) => void;
  /** Read only these blocks (change tracking: block_loop.ts). */
  tracked?: TrackedBlocks;
  /** Also return the SHA-256 of the digest entries (to compare with a full scan's: digestScan). */
  digestSha256?: boolean;
}

/** The engine's loop into two streams: headers, blocks, digests; ends both, or tears them down on failure. */
export async function dumpToStreams(o: DumpToStreams): Promise<DumpResult & { digestSha256?: string }> {
  const output = createDumpOutput({ ...o, pieces: o.par.compress });
  const sha = o.digestSha256 ? createHash("sha256") : null;
  try {
    await output.begin(o.blocksize);
    const r = await dumpBlocks({
      source: o.source,
      blocksize: o.blocksize,
      oldDigest: o.oldDigest,
      hasher: o.par.hasher,
      sinks: sha
        ? { ...output.sinks, digests: (c) => (sha.update(c), output.sinks.digests(c)) }
        : output.sinks,
      onProgress: o.onProgress,
      tracked: o.tracked,
    });
    await output.finish();
    return sha ? { ...r, digestSha256: sha.digest("hex") } : r;
  } catch (err) {
    output.abort();
    throw err;
  }
}

/**
 * The SHA-256 of the digest a full scan of `source` gives, with no other output: what --verify-tracking
 * holds a tracked dump's digest against (equal digests mean equal diffs: a block is in a diff exactly when
 * its digest differs from the old one).
 */
export async function digestScan(
  o: { source: ByteSource; blocksize: number; par: Parallelism },
): Promise<string> {
  const sha = createHash("sha256");
  await dumpBlocks({
    source: o.source,
    blocksize: o.blocksize,
    oldDigest: null,
    hasher: o.par.hasher,
    sinks: { changed: () => {}, digests: (c) => Promise.resolve(void sha.update(c)) },
  });
  return sha.digest("hex");
}
