/** MD5 of each block of a buffer; parallel.ts runs it inline or in worker threads behind BlockHasher. */
import { createHash } from "node:crypto";
import { DIGEST_SIZE } from "../format/digest.ts";

export interface BlockHasher {
  /**
   * Writes the MD5 of each block of `buf[0, len)` into `out` (16 bytes per block, in order).
   * Every block is `blocksize` bytes except possibly the last one.
   */
  hashBlocks(buf: Uint8Array, len: number, blocksize: number, out: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export function md5Into(block: Uint8Array, out: Uint8Array, at: number): void {
  const d = createHash("md5").update(block).digest();
  out.set(d, at);
}

/**
 * A chunk hashed by several threads in parts of `partBlocks` blocks, claimed one at a time through `ctl`,
 * shared as [next part to claim, parts done]: the main thread and any worker that joins take the next
 * unclaimed part until none is left, so a thread that is busy elsewhere (compressing) holds nobody up.
 */
export class SharedParts {
  readonly parts: number;
  constructor(
    readonly buf: Uint8Array,
    readonly len: number,
    readonly blocksize: number,
    readonly out: Uint8Array,
    readonly ctl: Int32Array,
    readonly partBlocks: number,
  ) {
    this.parts = Math.ceil(Math.ceil(len / blocksize) / partBlocks);
  }

  /** Claims and hashes the next part; false when none was left. */
  hashNext(): boolean {
    const i = Atomics.add(this.ctl, 0, 1);
    if (i >= this.parts) return false;
    const first = i * this.partBlocks, off = first * this.blocksize;
    const end = Math.min(this.len, off + this.partBlocks * this.blocksize);
    hashBlocksSync(
      this.buf.subarray(off, end),
      end - off,
      this.blocksize,
      this.out.subarray(first * DIGEST_SIZE),
    );
    Atomics.add(this.ctl, 1, 1);
    return true;
  }

  get done(): number {
    return Atomics.load(this.ctl, 1);
  }
}

export function hashBlocksSync(buf: Uint8Array, len: number, blocksize: number, out: Uint8Array): void {
  for (let off = 0, i = 0; off < len; off += blocksize, i++) {
    md5Into(buf.subarray(off, Math.min(off + blocksize, len)), out, i * DIGEST_SIZE);
  }
}
