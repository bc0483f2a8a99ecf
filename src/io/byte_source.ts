/** Pull-based byte sources: a file descriptor or a Node readable stream. */
import { Readable } from "node:stream";
import { AGAIN, isEagain, whenReady } from "./nonblocking.ts";
import { noteGarbage } from "../runtime.ts";
import * as fs from "node:fs";

export interface ByteSource {
  /** Reads up to `len` bytes into `buf` at `off`; resolves 0 at end of stream. */
  read(buf: Uint8Array, off: number, len: number): Promise<number>;
  /**
   * Up to `len` bytes without a copy: a view of the source's own buffer, valid until the next call on this
   * source; empty at the end of the stream. Only sources that hold a buffer have it.
   */
  view?(len: number): Promise<Uint8Array>;
  close(): Promise<void>;
}

/**
 * `len` bytes (fewer at the end of the stream): a view of the source's buffer where they lie in one piece
 * there (valid until the next call on the source), else gathered into `scratch`.
 */
export async function readSpan(src: ByteSource, scratch: Uint8Array, len: number): Promise<Uint8Array> {
  if (!src.view) return scratch.subarray(0, await readFull(src, scratch, 0, len));
  const first = await src.view(len);
  if (first.length === len || first.length === 0) return first;
  scratch.set(first);
  return scratch.subarray(0, first.length + await readFull(src, scratch, first.length, len - first.length));
}

/** Reads until `len` bytes or end of stream; returns the count read. */
export async function readFull(src: ByteSource, buf: Uint8Array, off: number, len: number): Promise<number> {
  let got = 0;
  while (got < len) {
    const n = await src.read(buf, off + got, len - got);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Sequential reads from a descriptor (file, block device, pipe). */
export class FdSource implements ByteSource {
  #closed = false;
  constructor(readonly fd: number, private readonly ownsFd = true) {}

  /** Waits out an empty non-blocking pipe (nonblocking.ts). */
  read(buf: Uint8Array, off: number, len: number): Promise<number> {
    return whenReady(() =>
      new Promise<number | typeof AGAIN>((resolve, reject) =>
        fs.read(
          this.fd,
          buf,
          off,
          len,
          null,
          (err, n) => err ? (isEagain(err) ? resolve(AGAIN) : reject(err)) : resolve(n),
        )
      )
    );
  }

  /** A positioned read (a file or device): up to `len` bytes at `position` into the start of `buf`. */
  readAt(buf: Uint8Array, len: number, position: number): Promise<number> {
    return new Promise((resolve, reject) =>
      fs.read(this.fd, buf, 0, len, position, (err, n) => err ? reject(err) : resolve(n))
    );
  }

  close(): Promise<void> {
    if (this.#closed || !this.ownsFd) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve, reject) => fs.close(this.fd, (err) => err ? reject(err) : resolve()));
  }
}

/**
 * A stream of what a descriptor (one that may be a non-blocking pipe: FdSource) yields: reads of up to 1 MiB
 * into one buffer, each passed on as a copy of exactly its bytes (a pipe gives 64 KiB at a time).
 */
export function fdReadable(fd: number): Readable {
  const src = new FdSource(fd, false);
  const buf = new Uint8Array(1 << 20);
  return Readable.from(
    (async function* () {
      for (let n; (n = await src.read(buf, 0, buf.length)) > 0;) yield buf.slice(0, n);
    })(),
    { objectMode: false },
  );
}

/** Reads from an async iterable of chunks, e.g. a decompressor's output. */
export class StreamSource implements ByteSource {
  #it: AsyncIterator<Uint8Array>;
  #chunk: Uint8Array = new Uint8Array(0);
  #pos = 0;

  constructor(
    stream: AsyncIterable<Uint8Array>,
    private readonly onClose: () => void | Promise<void> = () => {},
  ) {
    this.#it = stream[Symbol.asyncIterator]();
  }

  async read(buf: Uint8Array, off: number, len: number): Promise<number> {
    const v = await this.view(len);
    buf.set(v, off);
    return v.length;
  }

  async view(len: number): Promise<Uint8Array> {
    while (this.#pos >= this.#chunk.length) {
      const r = await this.#it.next();
      if (r.done) return new Uint8Array(0);
      noteGarbage(r.value.length);
      this.#chunk = r.value;
      this.#pos = 0;
    }
    const n = Math.min(len, this.#chunk.length - this.#pos);
    return this.#chunk.subarray(this.#pos, this.#pos += n);
  }

  async close(): Promise<void> {
    await this.#it.return?.();
    await this.onClose();
  }
}

/** The first `limit` bytes of `src` (which goes on beyond them: e.g. a stdin that carries more). */
export class LimitedSource implements ByteSource {
  #left: number;
  constructor(private readonly src: ByteSource, limit: number) {
    this.#left = limit;
  }

  async read(buf: Uint8Array, off: number, len: number): Promise<number> {
    if (this.#left === 0) return 0;
    const n = await this.src.read(buf, off, Math.min(len, this.#left));
    this.#left -= n;
    return n;
  }

  close(): Promise<void> {
    return Promise.resolve(); // the rest of `src` is someone else's
  }
}

/** Serves small reads (record headers, blocks) from large reads of `src` into one reused buffer. */
export class BufferedSource implements ByteSource {
  #buf: Uint8Array;
  #pos = 0;
  #end = 0;

  constructor(private readonly src: ByteSource, size = 1 << 20) {
    this.#buf = new Uint8Array(size);
  }

  async read(buf: Uint8Array, off: number, len: number): Promise<number> {
    if (this.#pos === this.#end && len >= this.#buf.length) return this.src.read(buf, off, len);
    const v = await this.view(len);
    buf.set(v, off);
    return v.length;
  }

  async view(len: number): Promise<Uint8Array> {
    if (this.#pos === this.#end) {
      this.#pos = 0;
      this.#end = await this.src.read(this.#buf, 0, this.#buf.length);
    }
    const n = Math.min(len, this.#end - this.#pos);
    return this.#buf.subarray(this.#pos, this.#pos += n);
  }

  close(): Promise<void> {
    return this.src.close();
  }
}
