/**
 * Diff stream (`NAME.N[.gz|.lzop|.zst]` before compression): u32le blocksize, then records
 * `u32le offset_low, u32le offset_high, block bytes`, in increasing offset order. A block is `blocksize`
 * bytes except the source's last block, which may be shorter and then ends the stream.
 */
import { IntegrityError } from "../errors.ts";
import { type ByteSource, readFull, readSpan } from "../io/byte_source.ts";
import { decodeBlocksize, encodeBlocksize, HEADER_SIZE } from "./digest.ts";

export const RECORD_HEADER_SIZE = 8;
const TWO_32 = 2 ** 32;

export function encodeRecordHeader(offset: number, out = new Uint8Array(RECORD_HEADER_SIZE)): Uint8Array {
  const dv = new DataView(out.buffer, out.byteOffset, RECORD_HEADER_SIZE);
  dv.setUint32(0, offset % TWO_32, true);
  dv.setUint32(4, Math.floor(offset / TWO_32), true);
  return out;
}

const u32le = (b: Uint8Array, at: number) =>
  (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;

export interface DiffRecord {
  /** Byte offset of the block in the source. */
  offset: number;
  /** Block index (offset / blocksize). */
  index: number;
  /** The block; a view valid until the next `next()` call. */
  data: Uint8Array;
}

/**
 * Parses a diff stream record by record, checking alignment and (unless `ordered: false`, for `merge`, which
 * applies records as they come like the original) increasing order. `what` names it in errors.
 */
export class DiffReader {
  readonly blocksize: number;
  #header = new Uint8Array(RECORD_HEADER_SIZE);
  #block: Uint8Array;
  #last = -1;
  #ended = false;

  private constructor(
    private readonly src: ByteSource,
    blocksize: number,
    readonly what: string,
    private readonly ordered: boolean,
  ) {
    this.blocksize = blocksize;
    this.#block = new Uint8Array(blocksize);
  }

  static async open(
    src: ByteSource,
    what: string,
    o: { ordered: boolean } = { ordered: true },
  ): Promise<DiffReader> {
    const head = new Uint8Array(HEADER_SIZE);
    const n = await readFull(src, head, 0, HEADER_SIZE);
    if (n === 0) throw new IntegrityError(`${what}: empty (no block size header)`);
    return new DiffReader(src, decodeBlocksize(head.subarray(0, n), what), what, o.ordered);
  }

  /** The next record, or null at the end of the stream. */
  async next(): Promise<DiffRecord | null> {
    if (this.#ended) return null;
    // views of the source's buffer where possible: most records are not copied here at all
    const h = await readSpan(this.src, this.#header, RECORD_HEADER_SIZE);
    if (h.length === 0) {
      this.#ended = true;
      return null;
    }
    if (h.length < RECORD_HEADER_SIZE) throw new IntegrityError(`${this.what}: truncated record header`);
    const offset = u32le(h, 0) + u32le(h, 4) * TWO_32;
    if (offset % this.blocksize !== 0) {
      throw new IntegrityError(`${this.what}: record offset ${offset} is not a multiple of the block size`);
    }
    if (this.ordered && offset <= this.#last) {
      throw new IntegrityError(`${this.what}: record offset ${offset} is out of order (after ${this.#last})`);
    }
    const data = await readSpan(this.src, this.#block, this.blocksize);
    if (data.length === 0) {
      throw new IntegrityError(`${this.what}: record at offset ${offset} has no data (truncated)`);
    }
    if (data.length < this.blocksize) this.#ended = true; // a short block is the last one
    this.#last = offset;
    return { offset, index: offset / this.blocksize, data };
  }

  close(): Promise<void> {
    return this.src.close();
  }
}

/** Writes a diff stream: the block size header, then records. */
export class DiffWriter {
  #hdr = new Uint8Array(RECORD_HEADER_SIZE);

  /** `write` copies the bytes or consumes them before it resolves (the header buffer is reused). */
  constructor(private readonly write: (bytes: Uint8Array) => void | Promise<void>) {}

  header(blocksize: number): void | Promise<void> {
    return this.write(encodeBlocksize(blocksize));
  }

  /** Synchronous while the writer has room (the hot path); a promise when it had to flush. */
  record(offset: number, block: Uint8Array): void | Promise<void> {
    const p = this.write(encodeRecordHeader(offset, this.#hdr));
    if (p) return p.then(() => this.write(block));
    return this.write(block);
  }
}
