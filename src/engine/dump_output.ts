/** Where a dump's output goes: diff (through the compressor) and digest, each to a writable stream. */
import { finished, type Writable } from "node:stream";
import { compressInto, type Compression } from "../compress/codec.ts";
import { DiffWriter } from "../format/diff.ts";
import { encodeBlocksize } from "../format/digest.ts";
import { ChunkBuffer, writeConsumed } from "../io/sink.ts";
import type { DumpSinks } from "./dump.ts";
import type { PieceCompressor } from "./parallel.ts";

export interface DumpOutput {
  sinks: DumpSinks;
  /** Writes both headers. */
  begin(blocksize: number): Promise<void>;
  /** Flushes, ends both streams and waits until they are written (and fsynced when they do that). */
  finish(): Promise<void>;
  /** Tears the streams down after a failure. */
  abort(): void;
}

export function createDumpOutput(
  diffOut: Writable,
  digestOut: Writable,
  compression: Compression,
  level: number,
  pieces: PieceCompressor,
): DumpOutput {
  const pipe = compressInto(compression, level, diffOut, pieces);
  const digestDone = new Promise<void>((resolve, reject) =>
    finished(digestOut, (err) => err ? reject(err) : resolve())
  );
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
