/** merge's diff applier (restorer/apply_diff.ts): the original's stream-order semantics across read sizes. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import type { ByteSource } from "../../src/io/byte_source.ts";
import { applyDiff } from "../../src/restorer/apply_diff.ts";
import { it, pseudoRandom, tempDir } from "../helpers.ts";

const BS = 4096;

/** A source serving `bytes` at most `step` bytes per read, as a pipe or decompressor may. */
function source(bytes: Buffer, step: number): ByteSource {
  let pos = 0;
  return {
    read: (buf, off, len) => {
      const n = Math.min(len, step, bytes.length - pos);
      buf.set(bytes.subarray(pos, pos + n), off);
      pos += n;
      return Promise.resolve(n);
    },
    close: () => Promise.resolve(),
  };
}

const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const record = (
  offset: number,
  data: Buffer,
) => [u32(offset % 2 ** 32), u32(Math.floor(offset / 2 ** 32)), data];

describe("applyDiff", () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  /** The diff applied to a new file through reads of `step` bytes; the file's bytes, or the error. */
  async function apply(diff: Buffer, step: number): Promise<{ file: Buffer; error: Error | null }> {
    const p = path.join(dir, `out-${step}-${diff.length}`);
    const fd = fs.openSync(p, "w+");
    let error: Error | null = null;
    try {
      await applyDiff(source(diff, step), fd, { what: "diff", target: p });
    } catch (err) {
      error = err as Error;
    } finally {
      fs.closeSync(fd);
    }
    return { file: fs.readFileSync(p), error };
  }

  // 1200 blocks (4.7 MiB: more than one 4 MiB read), in runs, then out of order and repeated, a short last one
  const blocks = Array.from({ length: 1203 }, (_, i) => pseudoRandom(BS, i));
  const parts: Buffer[] = [u32(BS)];
  const want = Buffer.alloc(1203 * BS);
  const put = (index: number, data: Buffer) => {
    parts.push(...record(index * BS, data));
    data.copy(want, index * BS);
  };
  for (let i = 0; i < 1200; i++) put(i, blocks[i]);
  put(5, blocks[1200]); // out of order, and the later record wins
  put(1201, blocks[1201]);
  put(5, blocks[1202]);
  const last = pseudoRandom(100, 99);
  parts.push(...record(1202 * BS, last));
  last.copy(want, 1202 * BS);
  const diff = Buffer.concat(parts);
  const wantFile = want.subarray(0, 1202 * BS + 100);

  for (const step of [1000, 65536, 1 << 22]) {
    it(`applies records in stream order, the later one winning (reads of ${step} bytes)`, async () => {
      const r = await apply(diff, step);
      assert.equal(r.error, null);
      assert.ok(r.file.equals(wantFile));
    });
  }

  it("a truncated stream stops after the records before it were written", async () => {
    const cut = diff.subarray(0, 4 + 700 * (8 + BS) + 5);
    const r = await apply(cut, 3000);
    assert.match(String(r.error), /diff: truncated record header/);
    assert.ok(r.file.equals(Buffer.concat(blocks.slice(0, 700))));
    const noData = await apply(diff.subarray(0, 4 + 3 * (8 + BS) + 8), 3000);
    assert.match(String(noData.error), /record at offset 12288 has no data/);
  });

  it("a misaligned offset stops it after the records before it were written", async () => {
    const bad = Buffer.concat([u32(BS), ...record(0, blocks[0]), ...record(BS + 1, blocks[1])]);
    const r = await apply(bad, 1 << 22);
    assert.match(String(r.error), /record offset 4097 is not a multiple of the block size/);
    assert.ok(r.file.equals(blocks[0]));
  });
});
