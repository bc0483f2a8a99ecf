/**
 * Digest file (`NAME.N.md5`): u32le blocksize, then the 16-byte MD5 of every block, in order.
 * Its length gives the number of blocks.
 */
import { IntegrityError } from "../errors.ts";

export const DIGEST_SIZE = 16;
export const HEADER_SIZE = 4;
export const DEFAULT_BLOCKSIZE = 16384;
/** Offsets are u32 pairs, but a block must fit in one read buffer: 64 MiB is plenty. */
export const MAX_BLOCKSIZE = 64 * 1024 * 1024;

export function encodeBlocksize(blocksize: number): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  new DataView(out.buffer).setUint32(0, blocksize, true);
  return out;
}

/** Decodes and sanity-checks a 4-byte block size header; `what` names the file in the error. */
export function decodeBlocksize(header: Uint8Array, what: string): number {
  if (header.length < HEADER_SIZE) throw new IntegrityError(`${what}: too short to hold a block size header`);
  const bs = new DataView(header.buffer, header.byteOffset, HEADER_SIZE).getUint32(0, true);
  checkBlocksize(bs, what);
  return bs;
}

function checkBlocksize(bs: number, what: string): void {
  if (!Number.isInteger(bs) || bs < 1 || bs > MAX_BLOCKSIZE) {
    throw new IntegrityError(`${what}: invalid block size ${bs} (expected 1..${MAX_BLOCKSIZE})`);
  }
}

/** Number of blocks a digest file of `fileSize` bytes describes; rejects impossible lengths. */
export function digestBlockCount(fileSize: number, what: string): number {
  if (fileSize < HEADER_SIZE || (fileSize - HEADER_SIZE) % DIGEST_SIZE !== 0) {
    throw new IntegrityError(
      `${what}: length ${fileSize} is not 4 + 16*N bytes (truncated or not a digest file)`,
    );
  }
  return (fileSize - HEADER_SIZE) / DIGEST_SIZE;
}
