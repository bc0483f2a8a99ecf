/** The run lock: one holder at a time, named to the others; nothing kept once released; no PIDs read. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { after, describe } from "node:test";
import { EXIT } from "../../src/errors.ts";
import { RunLock } from "../../src/store/run_lock.ts";
import { it, tempDir } from "../helpers.ts";

describe("the run lock", () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, "c.lock");

  it("a second acquire fails with exit 4, naming the holder; after release it succeeds", () => {
    const first = RunLock.acquire(file, "chain c", "backup");
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.throws(
      () => RunLock.acquire(file, "chain c", "repair"),
      (e) =>
        (e as { exitCode?: number }).exitCode === EXIT.locked &&
        new RegExp(
          `^chain c is in use by another run \\(pid ${process.pid} on ${os.hostname()} since \\S+, ` +
            `blockdiff backup; lock ${file}\\)$`,
        ).test((e as Error).message),
    );
    assert.ok(first.isFile(file));
    first.release();
    assert.equal(fs.readFileSync(file, "utf8"), "", "the holder's line stays after release");
    RunLock.acquire(file, "chain c", "repair").release();
    assert.ok(fs.existsSync(file), "the lock file is never removed");
  });

  it("what the file holds means nothing: a PID of a live process, garbage", () => {
    for (const text of [`${process.pid}\n`, "garbage", ""]) {
      fs.writeFileSync(file, text);
      RunLock.acquire(file, "chain c", "backup").release();
    }
  });

  it("a lock file that cannot be created fails with one line (exit 1)", () => {
    assert.throws(
      () => RunLock.acquire(path.join(dir, "missing", "c.lock"), "chain c", "backup"),
      (e) =>
        (e as { exitCode?: number }).exitCode === EXIT.failure &&
        /opening lock file .*no such file/.test(`${e}`),
    );
  });
});
