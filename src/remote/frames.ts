/**
 * The agent's stdout: frames `u8 type, u32le length, payload`. 'D' diff bytes (compressed when asked),
 * 'S' digest bytes, 'P' progress (JSON {bytes, total}), 'T' trailer (JSON counts, last frame of a good run),
 * 'E' error message, 'L' a line for the controller's log (e.g. stale snapshots), 'R' ready for lvcreate
 * (`--await-lock`: the agent waits for GO_BYTE on stdin, sent once the controller holds its lock), 'C' the
 * snapshot is created (the controller unlocks). The trailer's counts let the controller detect truncated or
 * corrupted output. After a trailer that names a kept snapshot (change tracking), only log frames follow.
 */
import type { DumpResult } from "../engine/block_loop.ts";
import { IntegrityError } from "../errors.ts";
import type { BaselineRecord, ScanRecord } from "../format/manifest.ts";
import { releaseBytes } from "../io/bytes.ts";

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
/**
 * Sent on the agent's stdin after the old digest, when the trailer says it kept a snapshot: the generation
 * was published (the snapshot becomes the baseline). Anything else, or the end of stdin: it was not.
 */
export const PUBLISHED_BYTE = 0x50;
export const FRAME_HEADER = 5;
const MAX_FRAME = 64 << 20;

export interface Trailer extends DumpResult {
  diffBytes: number;
  digestBytes: number;
  /** With change tracking (a thin LV): how the blocks were found, and the snapshot kept as baseline. */
  scan?: ScanRecord;
  baseline?: BaselineRecord | null;
}

export function frameHeader(type: number, length: number): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER);
  h[0] = type;
  new DataView(h.buffer).setUint32(1, length, true);
  return h;
}

export interface Frame {
  type: number;
  payload: Uint8Array;
  /**
   * Present when the payload is a copy of the parser's own (a frame that spanned chunks): frees it at once
   * once the caller is done with it (large frames would otherwise wait for a garbage collection).
   */
  release?: () => void;
}

/**
 * Splits a byte stream into frames; `push` returns complete frames (payload views valid until next push).
 * A frame that spans chunks is gathered once (its pieces are copied as they come, then joined), so a 1 MiB
 * frame arriving in 32 KiB SSH packets costs two copies, not one per packet.
 */
export class FrameParser {
  /** Copies of the bytes of an incomplete frame. */
  #parts: Uint8Array[] = [];
  #have = 0;
  /** Total length of the incomplete frame, once its header is in. */
  #need: number | null = null;

  push(chunk: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let pos = 0;
    if (this.#have) {
      const need = this.#need ??= this.#frameLength(chunk);
      if (need === null || this.#have + chunk.length < need) {
        this.#keep(chunk);
        return frames;
      }
      const whole = new Uint8Array(need);
      let at = 0;
      for (const p of this.#parts) {
        whole.set(p, (at += p.length) - p.length);
        releaseBytes(p);
      }
      pos = need - this.#have;
      whole.set(chunk.subarray(0, pos), at);
      this.#parts = [];
      this.#have = 0;
      this.#need = null;
      frames.push({
        type: whole[0],
        payload: whole.subarray(FRAME_HEADER),
        release: () => releaseBytes(whole),
      });
    }
    while (chunk.length - pos >= FRAME_HEADER) {
      const len = checkHeader(chunk.subarray(pos, pos + FRAME_HEADER));
      if (chunk.length - pos - FRAME_HEADER < len) break;
      frames.push({
        type: chunk[pos],
        payload: chunk.subarray(pos + FRAME_HEADER, pos + FRAME_HEADER + len),
      });
      pos += FRAME_HEADER + len;
    }
    if (pos < chunk.length) this.#keep(chunk.subarray(pos));
    return frames;
  }

  /** Bytes of an incomplete frame left at the end of the stream. */
  get leftover(): number {
    return this.#have;
  }

  #keep(bytes: Uint8Array): void {
    this.#parts.push(bytes.slice()); // the caller may reuse its chunk
    this.#have += bytes.length;
  }

  /** Total length of the incomplete frame once `next` arrives, or null while its header is incomplete. */
  #frameLength(next: Uint8Array): number | null {
    if (this.#have + next.length < FRAME_HEADER) return null;
    const head = new Uint8Array(FRAME_HEADER);
    let at = 0;
    for (const p of [...this.#parts, next]) {
      const n = Math.min(p.length, FRAME_HEADER - at);
      head.set(p.subarray(0, n), at);
      if ((at += n) === FRAME_HEADER) break;
    }
    return FRAME_HEADER + checkHeader(head);
  }
}

/** Validates a frame header; returns the payload length. */
function checkHeader(h: Uint8Array): number {
  if (!(Object.values(FRAME) as number[]).includes(h[0])) {
    throw new IntegrityError(`agent output corrupt: unknown frame type 0x${h[0].toString(16)}`);
  }
  const len = new DataView(h.buffer, h.byteOffset + 1, 4).getUint32(0, true);
  if (len > MAX_FRAME) throw new IntegrityError(`agent output corrupt: frame of ${len} bytes`);
  return len;
}
