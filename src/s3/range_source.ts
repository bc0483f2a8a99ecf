/**
 * An object read in order through ranged GETs, several in flight: while the caller consumes one range the
 * next ones are on their way, so a restore or verify is not held to one round trip per range.
 */
import type { ByteSource } from "../io/byte_source.ts";
import type { Bucket } from "./bucket.ts";

export interface RangeSourceOptions {
  /** Bytes per GET. */
  rangeBytes?: number;
  /** GETs in flight at once (the memory held is about rangeBytes × depth). */
  depth?: number;
}

const RANGE_BYTES = 8 << 20;
const DEPTH = 4;

export class RangeSource implements ByteSource {
  readonly #rangeBytes: number;
  readonly #depth: number;
  /** Ranges requested and not consumed yet, in order. */
  readonly #ahead: Promise<Uint8Array[]>[] = [];
  /** The current range's pieces not consumed yet. */
  #pieces: Uint8Array[] = [];
  #next = 0;
  #chunk: Uint8Array = new Uint8Array(0);
  #pos = 0;
  #closed = false;

  constructor(
    private readonly bucket: Bucket,
    private readonly key: string,
    private readonly size: number,
    o: RangeSourceOptions = {},
  ) {
    this.#rangeBytes = o.rangeBytes ?? RANGE_BYTES;
    this.#depth = o.depth ?? DEPTH;
  }

  async read(buf: Uint8Array, off: number, len: number): Promise<number> {
    const piece = await this.#piece();
    if (piece === null) return 0;
    const n = Math.min(len, piece.length - this.#pos);
    buf.set(piece.subarray(this.#pos, this.#pos + n), off);
    this.#pos += n;
    return n;
  }

  /** The object's bytes in the pieces they arrived in (no copy); the source is read to its end. */
  async *pieces(): AsyncGenerator<Uint8Array> {
    for (let p = await this.#piece(); p !== null; p = await this.#piece()) {
      yield this.#pos === 0 ? p : p.subarray(this.#pos);
      this.#pos = p.length;
    }
  }

  /** The piece being read (with bytes left at #pos), or null at the end. */
  async #piece(): Promise<Uint8Array | null> {
    while (this.#pos === this.#chunk.length) {
      if (this.#pieces.length === 0) {
        this.#fill();
        const next = this.#ahead.shift();
        if (next === undefined) return null;
        this.#pieces = await next;
        this.#fill();
      }
      this.#chunk = this.#pieces.shift() ?? new Uint8Array(0);
      this.#pos = 0;
    }
    return this.#chunk;
  }

  /** Keeps `depth` GETs in flight. */
  #fill(): void {
    while (!this.#closed && this.#ahead.length < this.#depth && this.#next < this.size) {
      const start = this.#next, end = Math.min(this.size, start + this.#rangeBytes);
      const p = this.bucket.getRange(this.key, start, end);
      p.catch(() => {}); // seen when its turn comes
      this.#ahead.push(p);
      this.#next = end;
    }
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#ahead.length = 0;
    return Promise.resolve();
  }
}
