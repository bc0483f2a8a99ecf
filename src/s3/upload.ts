/**
 * One object written as it is produced: a multipart upload whose parts go out while the next is being
 * filled (a few in flight), or a single PUT when the whole object fits in one part. The part size starts
 * from the expected size so that 5,000 parts cover it (at least 8 MiB), and doubles every 1,000 parts, so
 * an object of unknown size fits too: 10,000 parts (S3's limit) starting at 8 MiB hold 8 TiB. Nothing is
 * visible under the key before `finish`.
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { Writable } from "node:stream";
import { BlockdiffError } from "../errors.ts";
import { noteGarbage } from "../runtime.ts";
import type { Bucket } from "./bucket.ts";

const MIN_PART = 8 << 20;
const MAX_PARTS = 10_000;
const GROW_EVERY = 1_000;
const IN_FLIGHT = 4;
/** Read size of a file being uploaded. */
const READ_BYTES = 1 << 20;

export class ObjectUpload {
  #partSize: number;
  #buf: Uint8Array;
  #filled = 0;
  #uploadId: string | null = null;
  #etags: string[] = [];
  #inFlight: Promise<void>[] = [];
  #done = false;
  bytes = 0;

  constructor(
    private readonly bucket: Bucket,
    readonly key: string,
    private readonly o: {
      expectedBytes: number;
      /** What a failure means (a run that lost the race for its generation fails as having lost it). */
      explain?: (err: unknown) => Promise<unknown>;
    },
  ) {
    const perPart = Math.ceil(o.expectedBytes / (MAX_PARTS / 2));
    this.#partSize = Math.max(MIN_PART, Math.ceil(perPart / (1 << 20)) * (1 << 20));
    this.#buf = new Uint8Array(this.#partSize);
  }

  async write(chunk: Uint8Array): Promise<void> {
    await this.#explained(() => this.#write(chunk));
  }

  async #write(chunk: Uint8Array): Promise<void> {
    this.bytes += chunk.length;
    for (let at = 0; at < chunk.length;) {
      const n = Math.min(chunk.length - at, this.#buf.length - this.#filled);
      this.#buf.set(chunk.subarray(at, at + n), this.#filled);
      this.#filled += n;
      at += n;
      if (this.#filled === this.#buf.length) await this.#sendPart();
    }
  }

  /** Publishes the object under its key. */
  finish(): Promise<void> {
    return this.#explained(() => this.#finish());
  }

  async #explained(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      throw this.o.explain ? await this.o.explain(err) : err;
    }
  }

  async #finish(): Promise<void> {
    if (this.#uploadId === null) {
      await this.bucket.put(this.key, this.#buf.subarray(0, this.#filled));
    } else {
      if (this.#filled > 0) await this.#sendPart();
      await Promise.all(this.#inFlight);
      await this.bucket.completeUpload(this.key, this.#uploadId, this.#etags);
    }
    this.#done = true;
  }

  /** Gives the upload up (its parts are freed); best effort: a server that is down is cleaned up later. */
  async abort(): Promise<void> {
    await Promise.allSettled(this.#inFlight);
    if (this.#uploadId !== null && !this.#done) await this.bucket.abortUpload(this.key, this.#uploadId);
  }

  async #sendPart(): Promise<void> {
    this.#uploadId ??= await this.bucket.createUpload(this.key);
    const part = this.#etags.length + 1;
    if (part > MAX_PARTS) throw new BlockdiffError(`${this.key}: more than ${MAX_PARTS} parts`);
    const body = this.#buf.subarray(0, this.#filled);
    this.#etags.push("");
    const sent = this.bucket.uploadPart(this.key, this.#uploadId, part, body).then((etag) => {
      this.#etags[part - 1] = etag;
    });
    sent.catch(() => {}); // awaited below or in finish/abort
    this.#inFlight.push(sent);
    if (part % GROW_EVERY === 0) this.#partSize *= 2;
    this.#buf = new Uint8Array(this.#partSize);
    noteGarbage(body.length * 2); // the part, and the SDK's copy of it
    this.#filled = 0;
    if (this.#inFlight.length >= IN_FLIGHT) await this.#inFlight.shift();
  }
}

/** Uploads descriptor `fd`'s bytes, from its start to its end, into `up` and finishes it; `seen` sees each piece. */
export async function uploadFromFd(
  up: ObjectUpload,
  fd: number,
  seen: (piece: Uint8Array) => void = () => {},
): Promise<void> {
  const buf = new Uint8Array(READ_BYTES);
  for (let pos = 0;;) {
    const n = await new Promise<number>((resolve, reject) =>
      fs.read(fd, buf, 0, buf.length, pos, (err, n) => err ? reject(err) : resolve(n))
    );
    if (n === 0) break;
    seen(buf.subarray(0, n));
    await up.write(buf.subarray(0, n));
    pos += n;
  }
  await up.finish();
}

/** A writable into an upload: counts its bytes and takes their SHA-256; ending it completes the upload. */
export class UploadWritable extends Writable {
  bytes = 0;
  readonly sha256: Hash = createHash("sha256");

  constructor(private readonly upload: ObjectUpload) {
    super({ highWaterMark: 4 << 20 });
  }

  override _write(chunk: Uint8Array, _enc: string, cb: (err?: Error | null) => void): void {
    this.sha256.update(chunk);
    this.bytes += chunk.length;
    this.upload.write(chunk).then(() => cb(), cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.upload.finish().then(() => cb(), cb);
  }
}
