/**
 * Decompresses a stream of concatenated zstd frames (what parallel compression writes) frame by frame.
 * Deno's streaming zstd decompressor stops at the first frame boundary, so frames are delimited here by
 * walking the frame format (RFC 8878): header, then blocks with 3-byte headers, then an optional checksum.
 * Skippable frames are skipped.
 */
import { Transform, type TransformCallback } from "node:stream";
import * as zlib from "node:zlib";
import { concatBytes } from "../io/bytes.ts";

const ZSTD_MAGIC = 0xfd2fb528;
type ZstdSync = { zstdDecompressSync(b: Uint8Array): Uint8Array };

/** Length of the complete frame at the start of `b`, 0 if `b` holds only part of it; throws if not zstd. */
export function frameLength(b: Uint8Array): number {
  if (b.length < 8) return 0;
  const dv = new DataView(b.buffer, b.byteOffset, b.length);
  const magic = dv.getUint32(0, true);
  if ((magic & 0xfffffff0) === 0x184d2a50) {
    const len = 8 + dv.getUint32(4, true);
    return b.length >= len ? len : 0;
  }
  if (magic !== ZSTD_MAGIC) throw new Error("zstd: Unknown frame descriptor");
  const fhd = b[4];
  const singleSegment = (fhd >> 5) & 1, hasChecksum = (fhd >> 2) & 1;
  const fcsSize = [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6];
  let pos = 5 + (singleSegment ? 0 : 1) + [0, 1, 2, 4][fhd & 3] + fcsSize;
  for (;;) {
    if (pos + 3 > b.length) return 0;
    const h = b[pos] | (b[pos + 1] << 8) | (b[pos + 2] << 16);
    const type = (h >> 1) & 3, size = h >>> 3;
    if (type === 3) throw new Error("zstd: reserved block type (corrupt data)");
    pos += 3 + (type === 1 ? 1 : size);
    if (h & 1) break;
  }
  pos += hasChecksum ? 4 : 0;
  return b.length >= pos ? pos : 0;
}

export class ZstdFrameDecompress extends Transform {
  #pending: Uint8Array = new Uint8Array(0);

  override _transform(chunk: Uint8Array, _enc: string, cb: TransformCallback): void {
    try {
      this.#pending = this.#pending.length ? concatBytes(this.#pending, chunk) : chunk;
      for (let len = frameLength(this.#pending); len > 0; len = frameLength(this.#pending)) {
        const frame = this.#pending.subarray(0, len);
        if (frame[0] === 0x28) this.push((zlib as unknown as ZstdSync).zstdDecompressSync(frame));
        this.#pending = this.#pending.subarray(len);
      }
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    cb(this.#pending.length ? new Error("zstd: unexpected end of file (truncated frame)") : null);
  }
}
