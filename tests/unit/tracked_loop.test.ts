/**
 * The engine's loop with change tracking: reading only the ranges that may have changed (gathered into
 * chunks, with unchanged runs in between) gives the same diff and digest as reading everything.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { type BlockRange, dumpBlocks } from "../../src/engine/block_loop.ts";
import { createParallelism } from "../../src/engine/parallel.ts";
import { DigestCursor } from "../../src/format/digest_cursor.ts";
import { FdSource } from "../../src/io/byte_source.ts";
import { it, pseudoRandom, tempDir } from "../helpers.ts";

const BS = 4096;

describe("change tracking in the engine's loop", () => {
  const dir = tempDir();
  const par = createParallelism(1);
  after(async () => {
    await par.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** The diff records (offset + bytes) and digest bytes a dump of `file` emits, as two SHA-256. */
  async function dump(file: string, old: Uint8Array | null, tracked?: { ranges: BlockRange[] }) {
    const fd = fs.openSync(file, "r");
    const source = new FdSource(fd);
    const diff = createHash("sha256"), digest = createHash("sha256");
    const oldDigest = old
      ? (await DigestCursor.open({ read: readerOf(old), close: () => Promise.resolve() }, "old")).cursor
      : null;
    const r = await dumpBlocks({
      source,
      blocksize: BS,
      oldDigest,
      hasher: par.hasher,
      sinks: {
        changed: (offset, block) => void diff.update(`${offset}:`).update(block),
        digests: (c) => Promise.resolve(void digest.update(c)),
      },
      chunkBytes: 16 * BS, // small chunks: ranges are gathered and cut across chunks
      tracked: tracked &&
        {
          ranges: tracked.ranges,
          size: fs.fstatSync(fd).size,
          readAt: (b, len, pos) => source.readAt(b, len, pos),
        },
    });
    await source.close();
    return { ...r, diff: diff.digest("hex"), digest: digest.digest("hex") };
  }

  /** The full digest file of `file` (what the old generation left). */
  async function digestOf(file: string): Promise<Uint8Array> {
    const fd = fs.openSync(file, "r");
    const parts: Uint8Array[] = [new Uint8Array([0, 16, 0, 0])]; // u32le 4096
    await dumpBlocks({
      source: new FdSource(fd),
      blocksize: BS,
      oldDigest: null,
      hasher: par.hasher,
      sinks: { changed: () => {}, digests: (c) => Promise.resolve(void parts.push(c.slice())) },
    });
    fs.closeSync(fd);
    return Buffer.concat(parts);
  }

  for (const [what, size] of [["whole blocks", BS * 200], ["a short last block", BS * 200 + 123]] as const) {
    it(`equals a full scan: scattered, adjacent and overlapping ranges, ${what}`, async () => {
      const file = path.join(dir, `img-${size}`);
      const before = pseudoRandom(size, 1);
      fs.writeFileSync(file, before);
      const old = await digestOf(file);
      const after = Buffer.from(before);
      const changedBlocks = [0, 3, 4, 5, 17, 40, 41, 63, 64, 99, 150, 151, 152, 199];
      for (const b of changedBlocks) {
        after.set(pseudoRandom(BS, 100 + b).subarray(0, Math.min(BS, size - b * BS)), b * BS);
      }
      fs.writeFileSync(file, after);
      const full = await dump(file, old);
      // tracked ranges: every changed block, as pool blocks would cover them (4 blocks each), plus some
      // unchanged ones, overlapping and adjacent, up to past the end
      const ranges: BlockRange[] = [
        { start: 0, end: 8 },
        { start: 16, end: 20 },
        { start: 40, end: 44 },
        { start: 60, end: 68 },
        { start: 96, end: 100 },
        { start: 148, end: 156 },
        { start: 196, end: 204 },
      ];
      const tracked = await dump(file, old, { ranges });
      assert.equal(tracked.diff, full.diff, "diff records");
      assert.equal(tracked.digest, full.digest, "digest");
      assert.equal(tracked.blocksChanged, changedBlocks.length);
      assert.deepEqual([tracked.bytesRead, tracked.blocks, tracked.lastBlockLength], [
        full.bytesRead,
        full.blocks,
        full.lastBlockLength,
      ]);
      assert.equal(tracked.scanned.blocks, 44 - (size === BS * 200 ? 4 : 3));
      assert.equal(full.scanned.bytes, size);
      // nothing to read: every digest from the old one
      const none = await dump(path.join(dir, `img-${size}`), await digestOf(file), { ranges: [] });
      assert.deepEqual([none.blocksChanged, none.scanned.blocks], [0, 0]);
    });
  }
});

/** A ByteSource read over bytes. */
function readerOf(bytes: Uint8Array) {
  let pos = 0;
  return (buf: Uint8Array, off: number, len: number) => {
    const n = Math.min(len, bytes.length - pos);
    buf.set(bytes.subarray(pos, pos + n), off);
    pos += n;
    return Promise.resolve(n);
  };
}
