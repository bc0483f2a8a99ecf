/**
 * `--lock FILE`: no overlapping runs (like `setlock -n`): a second run fails at once with EXIT.locked.
 * The lock file holds the owner's PID; one left by a killed run (dead PID) is taken over.
 */
import * as fs from "node:fs";
import process from "node:process";
import { BlockdiffError, describeIoError, EXIT } from "../errors.ts";
import { isAlive } from "./commit.ts";

export class RunLock {
  private constructor(readonly path: string) {}

  static acquire(path: string): RunLock {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fd = fs.openSync(path, "wx", 0o600);
        fs.writeSync(fd, `${process.pid}\n`);
        fs.closeSync(fd);
        return new RunLock(path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") {
          throw describeIoError(`creating lock ${path}`, err);
        }
      }
      const holder = readHolder(path);
      if (holder !== null && isAlive(holder)) {
        throw new BlockdiffError(`another run (pid ${holder}) holds the lock ${path}`, EXIT.locked);
      }
      // Stale (its process is gone) or half-written: take it over.
      fs.rmSync(path, { force: true });
    }
    throw new BlockdiffError(`could not acquire lock ${path}`, EXIT.locked);
  }

  release(): void {
    if (readHolder(this.path) === process.pid) fs.rmSync(this.path, { force: true });
  }
}

function readHolder(path: string): number | null {
  try {
    const n = Number(fs.readFileSync(path, "utf8").trim());
    return Number.isSafeInteger(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}
