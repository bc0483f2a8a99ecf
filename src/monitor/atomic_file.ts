/**
 * A small file replaced whole: written under `FINAL.tmp-PID` in the same directory, fsynced, renamed over
 * FINAL, the directory fsynced. A reader sees the old file or the new one, never a part; a run killed before
 * the rename leaves the old file as it was, and its temporary file, which the next write removes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { describeIoError } from "../errors.ts";
import { pidAlive } from "../io/pid_alive.ts";

export function writeFileAtomic(final: string, data: string, mode: number): void {
  removeDeadTemps(final);
  const temp = `${final}.tmp-${process.pid}`;
  try {
    const fd = fs.openSync(temp, "w", mode);
    try {
      fs.fchmodSync(fd, mode); // umask and an older temporary file must not decide who may read it
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(temp, final);
  } catch (err) {
    fs.rmSync(temp, { force: true });
    throw describeIoError(`writing ${final}`, err);
  }
  try {
    const dir = fs.openSync(path.dirname(final), "r");
    try {
      fs.fsyncSync(dir);
    } finally {
      fs.closeSync(dir);
    }
  } catch (err) {
    throw describeIoError(`syncing directory ${path.dirname(final)} after writing ${final}`, err);
  }
}

/** The temporary files of FINAL that killed processes left (another live writer's stays). */
export function removeDeadTemps(final: string): void {
  const prefix = `${path.basename(final)}.tmp-`;
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(path.dirname(final)).filter((e) => e.startsWith(prefix));
  } catch { /* the write says what is wrong */ }
  for (const e of entries) {
    const pid = Number(e.slice(prefix.length));
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    fs.rmSync(path.join(path.dirname(final), e), { force: true });
  }
}
