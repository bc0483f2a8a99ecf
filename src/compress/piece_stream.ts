/**
 * A writable that compresses each written piece into an independent gzip member / zstd frame (so pieces can
 * be compressed in parallel) and writes them to `out` in order. Gzip and zstd readers treat the
 * concatenation as one stream.
 */
import { Writable } from "node:stream";
import { releaseBytes } from "../io/bytes.ts";
import { writeWithBackpressure } from "../io/sink.ts";
import { noteGarbage } from "../runtime.ts";

export type CompressFn = (data: Uint8Array) => Promise<Uint8Array>;

export class PieceCompressStream extends Writable {
  #inflight: Promise<Uint8Array>[] = [];

  constructor(
    private readonly compress: CompressFn,
    private readonly out: Writable,
    private readonly depth = 4,
  ) {
    super({ highWaterMark: 0 });
  }

  override _write(chunk: Uint8Array, _enc: string, cb: (err?: Error | null) => void): void {
    noteGarbage(chunk.length); // each piece leaves a compressed copy behind (peak RSS ~205 -> ~110 MB)
    const p = this.compress(chunk);
    p.catch(() => {}); // observed when flushed
    this.#inflight.push(p);
    if (this.#inflight.length < this.depth) return cb();
    this.#flushOne().then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    (async () => {
      while (this.#inflight.length) await this.#flushOne();
      this.out.end();
    })().then(() => cb(), cb);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#inflight = [];
    cb(err);
  }

  async #flushOne(): Promise<void> {
    const piece = await this.#inflight.shift()!;
    await writeWithBackpressure(this.out, piece, () => releaseBytes(piece));
  }
}
