import assert from "node:assert/strict";
import { describe } from "node:test";
import { it } from "../helpers.ts";
import { DiffReader, DiffWriter, encodeRecordHeader } from "../../src/format/diff.ts";
import { decodeBlocksize, digestBlockCount, encodeBlocksize } from "../../src/format/digest.ts";
import { decodeManifest, encodeManifest, type Manifest } from "../../src/format/manifest.ts";
import { decodeVersion, encodeVersion } from "../../src/format/ver.ts";
import { IntegrityError } from "../../src/errors.ts";
import type { ByteSource } from "../../src/io/byte_source.ts";

/** A ByteSource over bytes that hands them out in small pieces, to exercise partial reads. */
function bytes(b: Uint8Array, piece = 7): ByteSource {
  let pos = 0;
  return {
    read(buf, off, len) {
      const n = Math.min(len, piece, b.length - pos);
      buf.set(b.subarray(pos, pos + n), off);
      pos += n;
      return Promise.resolve(n);
    },
    close: () => Promise.resolve(),
  };
}

async function write(blocksize: number, records: [number, Uint8Array][]): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const w = new DiffWriter((b) => {
    parts.push(b.slice());
    return Promise.resolve();
  });
  await w.header(blocksize);
  for (const [off, data] of records) await w.record(off, data);
  return Buffer.concat(parts);
}

describe("diff stream", () => {
  it("encodes offsets as u32 low, u32 high (little-endian), past 4 GiB too", () => {
    assert.deepEqual([...encodeRecordHeader(0x1_2345_6789 * 16)], [
      ...Buffer.from("9078563412000000", "hex"),
    ]);
    assert.deepEqual([...encodeRecordHeader(5 * 2 ** 32 + 16384)], [0, 0x40, 0, 0, 5, 0, 0, 0]);
  });

  it("round-trips records, including a short last block", async () => {
    const a = new Uint8Array(4).fill(1), b = new Uint8Array(2).fill(2);
    const stream = await write(4, [[0, a], [2 ** 33, b]]);
    assert.deepEqual([...stream.subarray(0, 4)], [4, 0, 0, 0]);
    const r = await DiffReader.open(bytes(stream), "t");
    assert.equal(r.blocksize, 4);
    const r1 = await r.next();
    assert.deepEqual([r1!.offset, r1!.index, [...r1!.data]], [0, 0, [1, 1, 1, 1]]);
    const r2 = await r.next();
    assert.deepEqual([r2!.offset, r2!.index, [...r2!.data]], [2 ** 33, 2 ** 31, [2, 2]]);
    assert.equal(await r.next(), null);
  });

  it("rejects a truncated header, misaligned and out-of-order offsets, empty records", async () => {
    const block = new Uint8Array(4);
    const cases: [Uint8Array, RegExp][] = [
      [new Uint8Array(0), /empty/],
      [new Uint8Array([4, 0]), /too short/],
      [(await write(4, [[0, block]])).subarray(0, 4 + 5), /truncated record header/],
      [await write(4, [[2, block]]), /not a multiple/],
      [await write(4, [[4, block], [0, block]]), /out of order/],
      [(await write(4, [[0, block]])).subarray(0, 12), /no data/],
      [encodeBlocksize(0), /invalid block size/],
    ];
    for (const [stream, re] of cases) {
      await assert.rejects(async () => {
        const r = await DiffReader.open(bytes(stream), "t");
        while (await r.next() !== null) { /* read all */ }
      }, (e: Error) => e instanceof IntegrityError && re.test(e.message));
    }
  });
});

describe("digest file", () => {
  it("derives the block count from the length and rejects impossible lengths", () => {
    assert.equal(digestBlockCount(4, "d"), 0);
    assert.equal(digestBlockCount(4 + 16 * 3, "d"), 3);
    assert.throws(() => digestBlockCount(4 + 15, "d"), /not 4 \+ 16\*N/);
    assert.throws(() => digestBlockCount(2, "d"), /not 4 \+ 16\*N/);
    assert.equal(decodeBlocksize(encodeBlocksize(16384), "d"), 16384);
  });
});

describe("version file", () => {
  it("is a decimal number and a newline; garbage is an error", () => {
    assert.equal(encodeVersion(12), "12\n");
    assert.equal(decodeVersion("12\n", "v"), 12);
    assert.equal(decodeVersion("7", "v"), 7);
    for (const bad of ["", "x\n", "1 2\n", "-1\n", "\x00\x00"]) {
      assert.throws(() => decodeVersion(bad, "v"), IntegrityError);
    }
  });
});

describe("manifest", () => {
  const m: Manifest = {
    format: "blockdiff-manifest/1",
    toolVersion: "0",
    name: "db",
    generation: 1,
    source: "/dev/x",
    sourceSize: 10,
    blocksize: 4,
    blocks: 3,
    compression: "none",
    compressionLevel: 0,
    diffFile: "db.1",
    digestFile: "db.1.md5",
    startedAt: "2026-01-01T00:00:00.000Z",
    finishedAt: "2026-01-01T00:00:01.000Z",
    blocksRead: 3,
    blocksChanged: 3,
    bytesWritten: 38,
    diffSha256: "a",
    digestSha256: "b",
    mysql: null,
  };
  it("round-trips and detects any changed character through its checksum", () => {
    const text = encodeManifest(m);
    assert.equal(decodeManifest(text, "m").sourceSize, 10);
    const tampered = text.replace("2026-01-01T00:00:01", "2026-01-01T00:00:02");
    assert.throws(() => decodeManifest(tampered, "m"), /checksum mismatch/);
    assert.throws(() => decodeManifest("{", "m"), /not valid JSON/);
    assert.throws(() => decodeManifest(text.replace('"blocks": 3', '"blocks": -3'), "m"), /blocks/);
  });
});
