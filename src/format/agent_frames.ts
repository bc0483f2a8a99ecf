/**
 * The agent's stdout: frames `u8 type, u32le length, payload`. 'D' diff bytes (compressed when asked),
 * 'S' digest bytes, 'P' progress (JSON {bytes}), 'T' trailer (JSON counts, last frame of a good run),
 * 'E' error message, 'L' a line for the controller's log (e.g. stale snapshots), 'R' ready for lvcreate
 * (`--await-lock`: the agent waits for GO_BYTE on stdin, sent once the controller holds its lock), 'C' the
 * snapshot is created (the controller unlocks). The trailer's counts let the controller detect truncated or
 * corrupted output.
 */
import { IntegrityError } from "../errors.ts";
import { concatBytes } from "../io/bytes.ts";

export const FRAME = {
  diff: 0x44,
  digest: 0x53,
  progress: 0x50,
  trailer: 0x54,
  error: 0x45,
  log: 0x4c,
  ready: 0x52,
  created: 0x43,
} as const;
/** Sent on the agent's stdin, before the old digest, once the controller holds its lock. */
export const GO_BYTE = 0x47;
export const FRAME_HEADER = 5;
const MAX_FRAME = 64 << 20;

export interface Trailer {
  bytesRead: number;
  blocks: number;
  blocksChanged: number;
  lastBlockLength: number;
  diffBytes: number;
  digestBytes: number;
}

export function frameHeader(type: number, length: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER);
  h[0] = type;
  new DataView(h.buffer).setUint32(1, length, true);
  return h;
}

/** Splits a byte stream into frames; `push` returns complete frames (payload views valid until next push). */
export class FrameParser {
  #buf: Uint8Array = new Uint8Array(0);

  push(chunk: Uint8Array): { type: number; payload: Uint8Array }[] {
    this.#buf = this.#buf.length ? concatBytes(this.#buf, chunk) : chunk;
    const frames: { type: number; payload: Uint8Array }[] = [];
    let pos = 0;
    while (this.#buf.length - pos >= FRAME_HEADER) {
      const type = this.#buf[pos];
      if (!(Object.values(FRAME) as number[]).includes(type)) {
        throw new IntegrityError(`agent output corrupt: unknown frame type 0x${type.toString(16)}`);
      }
      const len = new DataView(this.#buf.buffer, this.#buf.byteOffset + pos + 1, 4).getUint32(0, true);
      if (len > MAX_FRAME) throw new IntegrityError(`agent output corrupt: frame of ${len} bytes`);
      if (this.#buf.length - pos - FRAME_HEADER < len) break;
      frames.push({ type, payload: this.#buf.subarray(pos + FRAME_HEADER, pos + FRAME_HEADER + len) });
      pos += FRAME_HEADER + len;
    }
    this.#buf = this.#buf.subarray(pos).slice();
    return frames;
  }

  /** Bytes of an incomplete frame left at the end of the stream. */
  get leftover(): number {
    return this.#buf.length;
  }
}
