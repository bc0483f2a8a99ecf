/** Push-side plumbing: a hashing file writable, backpressure-aware writes, and a coalescing buffer. */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { finished, Writable } from "node:stream";
import { writesReportPartialCount } from "../runtime.ts";
import { AGAIN, isEagain, whenReady } from "./nonblocking.ts";
import { EarlyWriteback } from "./writeback.ts";

/**
 * Writes to a descriptor sequentially, counting bytes and, unless `hash: false`, computing SHA-256 of what it
 * wrote (while the write itself runs). `sync` makes `final` fsync before it reports success, and starts the
 * disk writing early on the way (writeback.ts).
 */
export class FdWritable extends Writable {
  readonly sha256: Hash | null;
  bytes = 0;
  readonly #writeback: EarlyWriteback | null;

  constructor(readonly fd: number, private readonly opts: { sync: boolean; hash?: boolean }) {
    super({ highWaterMark: 4 * 1024 * 1024 });
    this.sha256 = opts.hash === false ? null : createHash("sha256");
    this.#writeback = opts.sync ? new EarlyWriteback(fd) : null;
  }

  override _write(chunk: Uint8Array, _enc: string, cb: (err?: Error | null) => void): void {
    const written = writeAll(this.fd, chunk);
    this.sha256?.update(chunk); // ~1.5 GB/s: overlaps the write instead of following it
    written.then(() => {
      this.bytes += chunk.length;
      this.#writeback?.wrote(chunk.length);
    }).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.#writeback) return cb();
    this.#writeback.settle().then(() => fs.fsync(this.fd, (err) => cb(err)), cb);
  }
}

/**
 * Writes all of `chunk` at the descriptor's current position, waiting out a full non-blocking pipe
 * (nonblocking.ts). Where the runtime cannot say how much of a write went through before EAGAIN (Deno),
 * trying again could repeat bytes: that fails instead.
 */
export async function writeAll(fd: number, chunk: Uint8Array): Promise<void> {
  for (let off = 0; off < chunk.length;) {
    off += await whenReady(() =>
      new Promise<number | typeof AGAIN>((resolve, reject) =>
        fs.write(fd, chunk, off, chunk.length - off, null, (err, n) => {
          if (!err) resolve(n);
          else if (isEagain(err) && writesReportPartialCount) resolve(AGAIN);
          else reject(err);
        })
      )
    );
  }
}

/** Writes a chunk, waiting for 'drain' when the stream asks for it; rejects if the stream fails. */
export async function writeWithBackpressure(
  stream: Writable,
  chunk: Uint8Array,
  onWritten?: () => void,
): Promise<void> {
  if (stream.errored) throw stream.errored;
  if (stream.write(chunk, (err) => err || onWritten?.())) return;
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      stream.off("drain", done);
      stream.off("close", done);
      stream.errored ? reject(stream.errored) : resolve();
    };
    stream.on("drain", done);
    stream.on("close", done);
  });
}

/** Writes a chunk and resolves once the stream has consumed it (the caller may then reuse the bytes). */
export function writeConsumed(stream: Writable, chunk: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    if (stream.errored) return reject(stream.errored);
    stream.write(chunk, (err) => err ? reject(err) : resolve());
  });
}

/**
 * Coalesces many small writes (8-byte headers, blocks) into large chunks handed to `flushTo`, which must
 * resolve once it no longer needs the chunk. Two buffers alternate: one fills while the other is written,
 * so nothing is allocated per chunk. `write` is synchronous while the data fits.
 */
export class ChunkBuffer {
  #bufs: [Uint8Array, Uint8Array];
  #cur = 0;
  #len = 0;
  #inflight: Promise<void> = Promise.resolve();

  constructor(
    private readonly flushTo: (chunk: Uint8Array) => Promise<void>,
    private readonly size = 1 << 20,
  ) {
    this.#bufs = [new Uint8Array(size), new Uint8Array(size)];
  }

  write(data: Uint8Array): void | Promise<void> {
    if (this.#len + data.length > this.size) return this.#writeSlow(data);
    this.#bufs[this.#cur].set(data, this.#len);
    this.#len += data.length;
  }

  async #writeSlow(data: Uint8Array): Promise<void> {
    await this.flush();
    if (data.length < this.size) return this.write(data) as void;
    await this.#inflight;
    await this.flushTo(data);
  }

  /** Hands the filled buffer to `flushTo` (after the previous one was consumed) and switches buffers. */
  async flush(): Promise<void> {
    if (this.#len === 0) return;
    const chunk = this.#bufs[this.#cur].subarray(0, this.#len);
    await this.#inflight;
    this.#inflight = this.flushTo(chunk);
    this.#inflight.catch(() => {}); // observed by the next flush or by drain()
    this.#cur ^= 1;
    this.#len = 0;
  }

  /** Flushes and waits until everything was consumed. */
  async drain(): Promise<void> {
    await this.flush();
    await this.#inflight;
  }
}

/** Resolves when `stream` has finished (all written, ended), rejects with its error. */
export function streamFinished(stream: Writable): Promise<void> {
  return new Promise((resolve, reject) => finished(stream, (err) => err ? reject(err) : resolve()));
}
