/** Where a dump's output goes: diff (through the compressor) and digest, each to a writable stream. */
import type { Writable } from "node:stream";
import { compressInto, type Compression } from "../compress/codec.ts";
import { DiffWriter } from "../format/diff.ts";
import { encodeBlocksize } from "../format/digest.ts";
import type { DigestCursor } from "../format/digest_cursor.ts";
import type { ByteSource } from "../io/byte_source.ts";
import { ChunkBuffer, streamFinished, writeConsumed } from "../io/sink.ts";
import { dumpBlocks, type DumpResult, type DumpSinks } from "./block_loop.ts";
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
}

/** The engine's loop into two streams: headers, blocks, digests; ends both, or tears them down on failure. */
export async function dumpToStreams(o: DumpToStreams): Promise<DumpResult> {
  const output = createDumpOutput({ ...o, pieces: o.par.compress });
  try {
    await output.begin(o.blocksize);
    const r = await dumpBlocks({
      source: o.source,
      blocksize: o.blocksize,
      oldDigest: o.oldDigest,
      hasher: o.par.hasher,
      sinks: output.sinks,
      onProgress: o.onProgress,
    });
    await output.finish();
    return r;
  } catch (err) {
    output.abort();
    throw err;
  }
}
