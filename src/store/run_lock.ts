/**
 * The run lock: an exclusive flock on a file, held for a whole run and released by the kernel when the
 * process ends however it ends. Every command that changes a chain holds `NAME.lock`; `--lock FILE` takes
 * the same kind of lock on a file of the user's (like `setlock -n`). A second run fails at once (exit 4),
 * naming the holder, which writes its PID, host, start time and command into the file. The file is never
 * removed: removing a lock file lets a third run lock a new file while the second still holds the old one.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";
import { BlockdiffError, describeIoError, EXIT } from "../errors.ts";
import { tryLockExclusive } from "../io/flock.ts";

export class RunLock {
  #fd: number | null;

  private constructor(readonly path: string, fd: number) {
    this.#fd = fd;
  }

  /**
   * Takes the lock on `path` (created 0600 if missing) or fails with EXIT.locked. `what` names what the lock
   * guards in messages ("chain /backup/db"); `command` is what the holder says it runs.
   */
  static acquire(path: string, what: string, command: string): RunLock {
    let fd: number;
    try {
      fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } catch (err) {
      throw describeIoError(`opening lock file ${path}`, err);
    }
    try {
      if (!tryLockExclusive(fd, path)) {
        throw new BlockdiffError(
          `${what} is in use by another run (${readHolder(fd)}; lock ${path})`,
          EXIT.locked,
        );
      }
      const line = `${process.pid} ${os.hostname()} ${new Date().toISOString()} ${command}\n`;
      fs.ftruncateSync(fd, 0);
      fs.writeSync(fd, line, 0);
    } catch (err) {
      fs.closeSync(fd);
      throw err instanceof BlockdiffError ? err : describeIoError(`writing lock file ${path}`, err);
    }
    return new RunLock(path, fd);
  }

  /** Whether `other` is this lock's file (a second lock on it would be refused by our own). */
  isFile(other: string): boolean {
    try {
      const a = fs.fstatSync(this.#fd!), b = fs.statSync(other);
      return a.dev === b.dev && a.ino === b.ino;
    } catch {
      return false;
    }
  }

  /** Clears the holder line and lets go (closing the descriptor releases the lock). */
  release(): void {
    const fd = this.#fd;
    if (fd === null) return;
    this.#fd = null;
    try {
      fs.ftruncateSync(fd, 0);
    } catch { /* released below all the same */ }
    fs.closeSync(fd);
  }
}

/**
 * "pid 123 on host1 since 2026-11-30T03:15:02.000Z, blockdiff backup" from the holder's line, which a holder
 * that has just taken the lock may not have written yet: waited for a moment.
 */
function readHolder(fd: number): string {
  for (let attempt = 0; attempt < 10; attempt++) {
    const buf = new Uint8Array(512);
    const text = new TextDecoder().decode(buf.subarray(0, fs.readSync(fd, buf, 0, buf.length, 0)));
    const m = /^(\d+) (\S+) (\S+) (.*)\n/.exec(text);
    if (m) return `pid ${m[1]} on ${m[2]} since ${m[3]}, blockdiff ${m[4]}`;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
  return "its holder did not say who it is";
}
