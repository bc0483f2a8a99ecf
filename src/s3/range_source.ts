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
  readonly #ahead: Promise<Uint8Array>[] = [];
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
    if (this.#pos === this.#chunk.length) {
      this.#fill();
      const next = this.#ahead.shift();
      if (next === undefined) return 0;
      this.#chunk = await next;
      this.#pos = 0;
      this.#fill();
    }
    const n = Math.min(len, this.#chunk.length - this.#pos);
    buf.set(this.#chunk.subarray(this.#pos, this.#pos + n), off);
    this.#pos += n;
    return n;
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
