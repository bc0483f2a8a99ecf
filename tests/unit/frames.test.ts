/** The agent's framed output (src/remote/frames.ts): parsed the same however the stream is cut. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { FRAME, FRAME_HEADER, frameHeader, FrameParser } from "../../src/remote/frames.ts";
import { it } from "../helpers.ts";

describe("agent frames", () => {
  const frames: [number, Uint8Array][] = [
    [FRAME.log, new TextEncoder().encode("hello")],
    [FRAME.diff, new Uint8Array(70000).map((_, i) => i * 7)],
    [FRAME.ready, new Uint8Array(0)],
    [FRAME.digest, new Uint8Array(33).fill(9)],
    [FRAME.trailer, new TextEncoder().encode("{}")],
  ];
  const stream = new Uint8Array(frames.reduce((n, [, p]) => n + FRAME_HEADER + p.length, 0));
  let at = 0;
  for (const [t, p] of frames) {
    stream.set(frameHeader(t, p.length), at);
    stream.set(p, at + FRAME_HEADER);
    at += FRAME_HEADER + p.length;
  }

  it("parses the same frames however the stream is cut, the chunks being reused by the caller", () => {
    for (const piece of [1, 3, 5, 6, 4096, 32768, stream.length]) {
      const parser = new FrameParser();
      const got: [number, number[]][] = [];
      const chunk = new Uint8Array(piece);
      let released = 0;
      for (let pos = 0; pos < stream.length; pos += piece) {
        const part = stream.subarray(pos, pos + piece);
        chunk.set(part);
        for (const f of parser.push(chunk.subarray(0, part.length))) {
          got.push([f.type, [...f.payload]]);
          if (f.release && f.payload.length) {
            f.release();
            assert.equal(f.payload.length, 0, "the copy of a released frame is still there");
            released++;
          }
        }
        assert.equal(chunk.length, piece, "the caller's chunk was freed");
        chunk.fill(0xee); // the caller's buffer is reused: kept bytes must have been copied
      }
      assert.equal(parser.leftover, 0);
      assert.deepEqual(got, frames.map(([t, p]) => [t, [...p]]), `pieces of ${piece}`);
      assert.equal(released > 0, piece < stream.length, `pieces of ${piece}: ${released} frames released`);
    }
  });

  it("counts a cut frame as leftover and rejects unknown types and huge lengths", () => {
    const parser = new FrameParser();
    parser.push(stream.subarray(0, 20));
    assert.equal(parser.leftover, 20 - (FRAME_HEADER + 5));
    assert.throws(
      () => new FrameParser().push(new Uint8Array([0x99, 0, 0, 0, 0])),
      /unknown frame type 0x99/,
    );
    assert.throws(
      () => new FrameParser().push(frameHeader(FRAME.diff, 1 << 30)),
      /frame of 1073741824 bytes/,
    );
  });
});
