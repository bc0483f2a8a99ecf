/** Restore's plan from the digests (restorer/plan.ts) and the reads it leads to (restorer/chain_blocks.ts). */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as zlib from "node:zlib";
import { after, describe } from "node:test";
import { ChainBlocks } from "../../src/restorer/chain_blocks.ts";
import { exactlyPlanned, planRestore, type RestorePlan } from "../../src/restorer/plan.ts";
import { it, pseudoRandom, referenceDump, tempDir } from "../helpers.ts";

const BS = 512;

describe("restore plan", () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  let chainNo = 0;

  /**
   * Writes a chain of `images` (diffs as the original dump makes them, or `full` ones: every block) and
   * returns its plan and files.
   */
  function chainOf(images: Buffer[], o: { full?: number[]; gzip?: number[] } = {}) {
    const base = path.join(dir, `c${chainNo++}`);
    let prev: Buffer | null = null;
    const files = images.map((img, m) => {
      const { diff, digest } = referenceDump(img, BS, o.full?.includes(m) ? null : prev);
      prev = digest;
      const digestPath = `${base}.${m + 1}.md5`;
      const diffPath = `${base}.${m + 1}${o.gzip?.includes(m) ? ".gz" : ""}`;
      fs.writeFileSync(digestPath, digest);
      fs.writeFileSync(diffPath, o.gzip?.includes(m) ? zlib.gzipSync(diff) : diff);
      return { generation: m + 1, digestPath, diffPath, compression: o.gzip?.includes(m) ? "gzip" : "none" };
    });
    return { plan: planRestore(files, BS), files };
  }

  /** Every block of the plan's image through ChainBlocks, one chunk of `chunk` blocks at a time. */
  async function readAll(
    plan: RestorePlan,
    files: ReturnType<typeof chainOf>["files"],
    chunk = 3,
    preload = 0,
  ) {
    const blocks = new ChainBlocks(
      plan,
      files.map((f, m) =>
        plan.members[m].survivors
          ? {
            fd: fs.openSync(f.diffPath, "r"),
            path: f.diffPath,
            compression: f.compression as "none" | "gzip",
          }
          : null
      ),
      { maxRun: chunk, pageCache: { advise: () => {}, cachedShare: () => null } },
    );
    const out: Buffer[] = [];
    try {
      await blocks.preload(preload);
      for (let first = 0; first < plan.blocks; first += chunk) {
        const buf = new Uint8Array(chunk * BS);
        const n = await blocks.fill(first, Math.min(chunk, plan.blocks - first), buf);
        out.push(Buffer.from(buf.subarray(0, n)));
      }
      await blocks.checkNewestEnds();
      return { image: Buffer.concat(out), streamed: blocks.streamedCount };
    } finally {
      await blocks.close();
    }
  }

  const change = (img: Buffer, blocks: number[], seed: number) => {
    const out = Buffer.from(img);
    for (const b of blocks) pseudoRandom(BS, seed + b).copy(out, b * BS);
    return out;
  };

  it("each block comes from the newest generation whose digest changed it, at its rank in that diff", async () => {
    const g1 = pseudoRandom(10 * BS, 1);
    const g2 = change(g1, [1, 4, 5], 10);
    const g3 = change(g2, [4, 9], 20);
    const { plan, files } = chainOf([g1, g2, g3]);
    assert.deepEqual([...plan.owner], [0, 1, 0, 0, 2, 1, 0, 0, 0, 2]);
    assert.deepEqual([...plan.rank], [0, 0, 2, 3, 0, 2, 6, 7, 8, 1]);
    assert.deepEqual(plan.members.map((m) => [m.records, m.survivors, m.lastSurvivor]), [
      [10, 6, 8],
      [3, 2, 5],
      [2, 2, 9],
    ]);
    const read = await readAll(plan, files);
    assert.ok(read.image.equals(g3));
    assert.equal(read.streamed, 0, "every diff read at its records' positions");
  });

  it("a source that grew and shrank, with a short last block", async () => {
    const g1 = pseudoRandom(4 * BS + 100, 2);
    const g2 = Buffer.concat([g1.subarray(0, 4 * BS), pseudoRandom(3 * BS + 7, 3)]); // grew, new tail
    const g3 = change(g2.subarray(0, 5 * BS + 9), [0], 30); // shrank into block 5
    const { plan, files } = chainOf([g1, g2, g3]);
    assert.equal(plan.blocks, 6);
    assert.ok(plan.members[1].holdsLast && plan.members[2].holdsLast);
    assert.ok((await readAll(plan, files, 4)).image.equals(g3));
  });

  it("a diff holding more than its digests say (a full dump) and a compressed one are read in order", async () => {
    const g1 = pseudoRandom(8 * BS, 4);
    const g2 = change(g1, [2], 40);
    const g3 = change(g2, [7], 50);
    const { plan, files } = chainOf([g1, g2, g3], { full: [1], gzip: [2] });
    assert.equal(exactlyPlanned(plan.members[1], BS, fs.statSync(files[1].diffPath).size), false);
    assert.equal(exactlyPlanned(plan.members[0], BS, fs.statSync(files[0].diffPath).size), true);
    const read = await readAll(plan, files);
    assert.ok(read.image.equals(g3));
    assert.equal(read.streamed, 2);
  });

  it("compressed diffs holding the fewest blocks are read into memory first, within the budget", async () => {
    const images = [pseudoRandom(12 * BS, 7)];
    for (let g = 1; g < 6; g++) images.push(change(images[g - 1], [g, g + 1], 80 + g));
    const { plan, files } = chainOf(images, { gzip: [0, 1, 2, 3, 4, 5] });
    const all = await readAll(plan, files, 3, 1 << 20);
    assert.ok(all.image.equals(images[5]));
    assert.equal(all.streamed, 1, "only the newest diff is still read as the blocks are needed");
    // generations 2-5 hold one surviving block each, 1 six, 6 two: two of the four fit in 2 blocks
    const some = await readAll(plan, files, 3, 2 * BS);
    assert.ok(some.image.equals(images[5]));
    assert.equal(some.streamed, 4);
  });

  it("zero blocks of the restored generation are not read", async () => {
    const g1 = pseudoRandom(6 * BS, 8);
    const g2 = Buffer.from(g1);
    g2.fill(0, 3 * BS, 4 * BS);
    const { plan, files } = chainOf([g1, g2]);
    assert.equal(plan.owner[3], plan.zero);
    assert.equal(plan.members[1].survivors, 0, "generation 2 holds only the zero block: not opened");
    const diff2 = fs.readFileSync(files[1].diffPath);
    diff2.writeUInt32LE(12345, 4); // its only record, unreadable: never read
    fs.writeFileSync(files[1].diffPath, diff2);
    assert.ok((await readAll(plan, files)).image.equals(g2));
  });

  it("a record that is not the block the digests put there fails, naming the diff", async () => {
    const g1 = pseudoRandom(6 * BS, 5);
    const g2 = change(g1, [1, 3], 60);
    const { plan, files } = chainOf([g1, g2]);
    const bad = fs.readFileSync(files[1].diffPath);
    bad.writeUInt32LE(5 * BS, 4 + (8 + BS)); // record 1 claims block 5: same size, other block
    fs.writeFileSync(files[1].diffPath, bad);
    await assert.rejects(
      readAll(plan, files),
      /c\d+\.2: record 1 is for offset 2560, but the digests put block 3/,
    );
  });

  it("a diff missing a block its digest changed fails when read in order", async () => {
    const g1 = pseudoRandom(6 * BS, 6);
    const g2 = change(g1, [1, 3], 70);
    const { plan, files } = chainOf([g1, g2], { gzip: [1] });
    const { diff } = referenceDump(change(g1, [1], 70), BS, referenceDump(g1, BS, null).digest);
    fs.writeFileSync(files[1].diffPath, zlib.gzipSync(diff)); // block 3 left out
    await assert.rejects(readAll(plan, files), /holds no record for block 3, whose digest changed there/);
  });
});
