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

export function hashBlocksSync(buf: Uint8Array, len: number, blocksize: number, out: Uint8Array): void {
  for (let off = 0, i = 0; off < len; off += blocksize, i++) {
    md5Into(buf.subarray(off, Math.min(off + blocksize, len)), out, i * DIGEST_SIZE);
  }
}
