/** Hashing shared between the main thread and worker threads (src/engine/parallel.ts), real workers. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { hashBlocksSync } from "../../src/engine/hasher.ts";
import { createParallelism } from "../../src/engine/parallel.ts";
import { sharedBytes } from "../../src/io/bytes.ts";
import { it, pseudoRandom } from "../helpers.ts";

describe("parallel hashing", () => {
  it("gives the single-threaded digests while the workers are busy compressing; late helpers change nothing", async () => {
    const par = createParallelism(2);
    const BS = 4096, SIZE = 16 << 20, CHUNKS = 12; // 64 parts a chunk: the helpers have time to join
    const bufs = [sharedBytes(SIZE), sharedBytes(SIZE)]; // alternating, as the dump loop does
    const out = sharedBytes((SIZE / BS) * 16);
    const data = Array.from({ length: CHUNKS }, (_, i) => pseudoRandom(SIZE, 100 + i));
    const piece = pseudoRandom(1 << 20, 7);
    const results: Uint8Array[] = [];
    const busy: Promise<unknown>[] = [];
    try {
      for (let i = 0; i < CHUNKS; i++) {
        const buf = bufs[i % 2];
        buf.set(data[i]);
        const len = SIZE - (i % 3) * 1000; // a short last block now and then
        // Pieces queued before every other chunk keep both workers busy: that chunk's helper task starts
        // late (and must then claim nothing of a later chunk); the others are hashed by both threads.
        if (i % 2) { for (let k = 0; k < 2; k++) busy.push(par.compress("gzip", 1, piece)); }
        await par.hasher.hashBlocks(buf, len, BS, out);
        results.push(new Uint8Array(out.subarray(0, Math.ceil(len / BS) * 16)));
      }
      await Promise.all(busy); // every helper has run by now
      for (let i = 0; i < CHUNKS; i++) {
        const len = SIZE - (i % 3) * 1000;
        const expected = new Uint8Array(Math.ceil(len / BS) * 16);
        hashBlocksSync(data[i], len, BS, expected);
        assert.ok(
          Buffer.from(results[i]).equals(expected),
          `chunk ${i} differs from the single-threaded digests`,
        );
      }
      assert.ok(Buffer.from(out.subarray(0, results.at(-1)!.length)).equals(results.at(-1)!), "a late write");
    } finally {
      await par.close();
    }
  });
});
