/** thin_delta's output, and the chain blocks its changed pool blocks touch. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { changedBlocks, parseThinDelta } from "../../src/tracking/thin_delta.ts";
import { it } from "../helpers.ts";

const XML = `<superblock uuid="" time="2" transaction="3" data_block_size="128" nr_data_blocks="0">
  <diff left="5" right="9">
    <same begin="0" length="10"/>
    <different begin="10" length="2"/>
    <same begin="12" length="3"/>
    <left_only begin="15" length="1"/>
    <right_only begin="16" length="4"/>
    <same begin="20" length="100"/>
  </diff>
</superblock>
`;

describe("thin_delta", () => {
  it("reads the changed pool ranges (different, left_only, right_only) and the pool block size", () => {
    const d = parseThinDelta(XML, { left: 5, right: 9 });
    assert.equal(d.dataBlockSectors, 128);
    assert.deepEqual(d.changed, [{ begin: 10, length: 2 }, { begin: 15, length: 1 }, {
      begin: 16,
      length: 4,
    }]);
  });

  it("refuses output it does not understand: other devices, other elements, stray text, no header", () => {
    assert.throws(() => parseThinDelta(XML, { left: 5, right: 8 }), /compares other devices/);
    assert.throws(
      () => parseThinDelta(XML.replace('<same begin="0"', '<mystery begin="0"'), { left: 5, right: 9 }),
      /unexpected <mystery>/,
    );
    assert.throws(
      () => parseThinDelta(XML.replace("</diff>", "garbage</diff>"), { left: 5, right: 9 }),
      /text outside tags/,
    );
    assert.throws(
      () => parseThinDelta("no current metadata snap", { left: 5, right: 9 }),
      /text outside tags/,
    );
    assert.throws(
      () => parseThinDelta(XML.replace('length="2"', 'length="x"'), { left: 5, right: 9 }),
      /without a number length/,
    );
    assert.throws(() => parseThinDelta("", { left: 5, right: 9 }), /no superblock or diff/);
  });

  it("turns pool blocks into chain blocks: several per pool block, merged, clamped to the device", () => {
    const d = parseThinDelta(XML, { left: 5, right: 9 }); // 64 KiB pool blocks
    // 16 KiB chain blocks: 4 per pool block; 15..20 are adjacent and merge
    assert.deepEqual(changedBlocks(d, 16384, 1 << 30), [{ start: 40, end: 48 }, { start: 60, end: 80 }]);
    // 128 KiB chain blocks: a pool block is half of one
    assert.deepEqual(changedBlocks(d, 131072, 1 << 30), [{ start: 5, end: 6 }, { start: 7, end: 10 }]);
    // a device that ends inside the changed ranges (the pool maps past its end)
    assert.deepEqual(changedBlocks(d, 16384, 17 * 65536 + 100), [{ start: 40, end: 48 }, {
      start: 60,
      end: 69,
    }]);
    // 1000-byte blocks: a pool range's edges fall inside blocks, which are read whole
    assert.deepEqual(
      changedBlocks({ dataBlockSectors: 1, changed: [{ begin: 3, length: 2 }] }, 1000, 1 << 20),
      [
        { start: 1, end: 3 },
      ],
    );
  });
});
