/** Sequential access to the entries of a digest stream (after its header), in increasing block order. */
import { IntegrityError } from "../errors.ts";
import { type ByteSource, readFull } from "../io/byte_source.ts";
import { decodeBlocksize, DIGEST_SIZE, HEADER_SIZE } from "./digest.ts";

const ENTRIES_PER_READ = 65536; // 1 MiB of digests

export class DigestCursor {
  #buf = new Uint8Array(ENTRIES_PER_READ * DIGEST_SIZE);
  #first = 0; // block index of #buf[0]
  #count = 0; // entries in #buf
  #eof = false;

  /** `onBytes` sees every byte read (e.g. to hash the file); `what` names the stream in errors. */
  constructor(
    private readonly src: ByteSource,
    readonly what: string,
    private readonly onBytes: (b: Uint8Array) => void = () => {},
  ) {}

  /** Reads a digest stream's block size header; the cursor then serves its entries. */
  static async open(
    src: ByteSource,
    what: string,
    onBytes?: (b: Uint8Array) => void,
  ): Promise<{ blocksize: number; cursor: DigestCursor }> {
    const head = new Uint8Array(HEADER_SIZE);
    const n = await readFull(src, head, 0, HEADER_SIZE);
    onBytes?.(head.subarray(0, n));
    return {
      blocksize: decodeBlocksize(head.subarray(0, n), what),
      cursor: new DigestCursor(src, what, onBytes),
    };
  }

  /** The digest of block `index` (a view valid until the next call), or null past the end. */
  async get(index: number): Promise<Uint8Array | null> {
    if (index < this.#first) throw new Error(`DigestCursor: index ${index} went backwards`);
    while (index >= this.#first + this.#count) {
      if (this.#eof) return null;
      await this.#fill();
    }
    const at = (index - this.#first) * DIGEST_SIZE;
    return this.#buf.subarray(at, at + DIGEST_SIZE);
  }

  /** Reads to the end of the stream and returns the total number of entries. */
  async drain(): Promise<number> {
    while (!this.#eof) await this.#fill();
    return this.#first + this.#count;
  }

  async #fill(): Promise<void> {
    this.#first += this.#count;
    const n = await readFull(this.src, this.#buf, 0, this.#buf.length);
    this.onBytes(this.#buf.subarray(0, n));
    if (n % DIGEST_SIZE !== 0) {
      throw new IntegrityError(`${this.what}: truncated (partial digest entry at the end)`);
    }
    this.#count = n / DIGEST_SIZE;
    if (n < this.#buf.length) this.#eof = true;
  }

  close(): Promise<void> {
    return this.src.close();
  }
}

/** Compares two 16-byte digests. */
export function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  return sameDigestAt(a, b, 0);
}

/** Compares digest `a` with the 16 bytes of `b` at `at`, without making a view. */
export function sameDigestAt(a: Uint8Array, b: Uint8Array, at: number): boolean {
  for (let i = 0; i < DIGEST_SIZE; i++) if (a[i] !== b[at + i]) return false;
  return true;
}
