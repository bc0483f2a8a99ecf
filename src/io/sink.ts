/** Push-side plumbing: a hashing file writable, backpressure-aware writes, and a coalescing buffer. */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { Writable } from "node:stream";

/**
 * Writes to a descriptor sequentially, counting bytes and computing SHA-256 of what it wrote.
 * `sync` makes `final` fsync before it reports success.
 */
export class FdWritable extends Writable {
  readonly sha256: Hash = createHash("sha256");
  bytes = 0;

  constructor(readonly fd: number, private readonly opts: { sync: boolean }) {
    super({ highWaterMark: 4 * 1024 * 1024 });
  }

  override _write(chunk: Uint8Array, _enc: string, cb: (err?: Error | null) => void): void {
    writeAll(this.fd, chunk).then(() => {
      this.sha256.update(chunk);
      this.bytes += chunk.length;
      cb();
    }, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.opts.sync) return cb();
    fs.fsync(this.fd, (err) => cb(err));
  }
}

/** Writes all of `chunk` at the descriptor's current position. */
export async function writeAll(fd: number, chunk: Uint8Array): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    off += await new Promise<number>((resolve, reject) =>
      fs.write(fd, chunk, off, chunk.length - off, null, (err, n) => err ? reject(err) : resolve(n))
    );
  }
}

/** Writes a chunk, waiting for 'drain' when the stream asks for it; rejects if the stream fails. */
export async function writeWithBackpressure(stream: Writable, chunk: Uint8Array): Promise<void> {
  if (stream.errored) throw stream.errored;
  if (stream.write(chunk)) return;
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

/** Coalesces many small writes (8-byte headers, blocks) into large chunks handed to `flushTo`. */
export class ChunkBuffer {
  #buf: Uint8Array;
  #len = 0;

  constructor(
    private readonly flushTo: (chunk: Uint8Array) => Promise<void>,
    private readonly size = 1 << 20,
  ) {
    this.#buf = new Uint8Array(size);
  }

  async write(data: Uint8Array): Promise<void> {
    if (this.#len + data.length > this.size) await this.flush();
    if (data.length >= this.size) return this.flushTo(data.slice());
    this.#buf.set(data, this.#len);
    this.#len += data.length;
  }

  async flush(): Promise<void> {
    if (this.#len === 0) return;
    const chunk = this.#buf.subarray(0, this.#len);
    this.#buf = new Uint8Array(this.size);
    this.#len = 0;
    await this.flushTo(chunk);
  }
}
