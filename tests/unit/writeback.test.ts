/** Early writeback (src/io/writeback.ts): a background sync starts every N bytes written; its errors surface. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe } from "node:test";
import { EarlyWriteback } from "../../src/io/writeback.ts";
import { it, tempDir } from "../helpers.ts";

describe("early writeback", () => {
  it("fault: a background sync that fails (a pipe cannot be synced) fails the next write and the settle", async () => {
    const dir = tempDir();
    try {
      const fifo = path.join(dir, "p");
      assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
      const r = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
      const w = fs.openSync(fifo, "w");
      const wb = new EarlyWriteback(w, 10);
      wb.wrote(9);
      await wb.settle(); // below the threshold: no sync started
      wb.wrote(1); // starts one: fdatasync on a pipe fails (EINVAL)
      await assert.rejects(wb.settle(), /EINVAL|invalid/i);
      assert.throws(() => wb.wrote(1), /EINVAL|invalid/i);
      fs.closeSync(w);
      fs.closeSync(r);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
