/** One pass over generations 1..K: every block from the newest generation that holds it. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { DiffReader, DiffWriter } from "../../src/format/diff.ts";
import type { ByteSource } from "../../src/io/byte_source.ts";
import { ChainMerger } from "../../src/restorer/chain_merger.ts";
import { it } from "../helpers.ts";

const BS = 8;

/** A diff stream of `records` ([block index, fill byte]; the last block may be short). */
async function diff(records: [number, number, number?][]): Promise<DiffReader> {
  const parts: Uint8Array[] = [];
  const w = new DiffWriter((b) => void parts.push(b.slice()));
  await w.header(BS);
  for (const [index, fill, len] of records) await w.record(index * BS, new Uint8Array(len ?? BS).fill(fill));
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  parts.reduce((at, p) => (bytes.set(p, at), at + p.length), 0);
  let pos = 0;
  const src: ByteSource = {
    read(buf, off, len) {
      const n = Math.min(len, bytes.length - pos, 5); // small pieces: records straddle reads
      buf.set(bytes.subarray(pos, pos + n), off);
      pos += n;
      return Promise.resolve(n);
    },
    close: () => Promise.resolve(),
  };
  return await DiffReader.open(src, `diff ${records.length}`);
}

async function merged(m: ChainMerger, blocks: number): Promise<number[][]> {
  const out: number[][] = [];
  for (let i = 0; i < blocks; i++) {
    const buf = new Uint8Array(BS);
    const n = await m.block(i, buf);
    out.push([...buf.subarray(0, n)]);
  }
  return out;
}

describe("the chain merger", () => {
  it("takes each block from the newest generation holding it; the last block may be short", async () => {
    const m = await ChainMerger.open([
      await diff([[0, 1], [1, 1], [2, 1], [3, 1]]),
      await diff([[1, 2], [3, 2]]),
      await diff([[1, 3], [2, 3], [4, 3, 3]]),
    ]);
    const got = await merged(m, 5);
    assert.deepEqual(got.map((b) => b[0]), [1, 3, 3, 2, 3]);
    assert.equal(got[4].length, 3);
    m.checkNewestEnds(5);
  });

  it("a block in no generation, or records past the end of the newest, is corruption", async () => {
    const gap = await ChainMerger.open([await diff([[0, 1], [2, 1]])]);
    await gap.block(0, new Uint8Array(BS));
    await assert.rejects(gap.block(1, new Uint8Array(BS)), /block 1 is in no generation/);
    const past = await ChainMerger.open([await diff([[0, 1], [1, 1], [2, 1]])]);
    await merged(past, 2);
    assert.throws(() => past.checkNewestEnds(2), /record for block 2 past the end \(2 blocks\)/);
  });
});
