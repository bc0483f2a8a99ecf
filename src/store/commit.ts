/**
 * Atomic publication: files are written under temporary names (`FINAL.tmp-PID`, mode 0600), fsynced,
 * renamed, and the directory fsynced. `NAME.ver` is written last the same way.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { describeIoError } from "../errors.ts";
import { encodeVersion } from "../format/ver.ts";
import type { Chain } from "./chain.ts";

const TEMP_RE = /\.tmp-(\d+)$/;

export function tempPathFor(final: string): string {
  return `${final}.tmp-${process.pid}`;
}

export function fsyncDir(dir: string): void {
  const fd = fs.openSync(dir, "r");
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** A set of files being written; nothing is visible under its final name before `publish`. */
export class PendingFiles {
  #files: { temp: string; final: string; fd: number | null }[] = [];

  /** Creates `final`'s temporary file (exclusive, 0600) and returns its descriptor. */
  create(final: string): number {
    const temp = tempPathFor(final);
    let fd: number;
    try {
      fd = fs.openSync(temp, "wx", 0o600);
    } catch (err) {
      throw describeIoError(`creating ${temp}`, err);
    }
    this.#files.push({ temp, final, fd });
    return fd;
  }

  /** Writes a small file completely (fsynced). */
  writeFile(final: string, data: string): void {
    const fd = this.create(final);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } catch (err) {
      throw describeIoError(`writing ${tempPathFor(final)}`, err);
    }
  }

  /** Renames every temporary file to its final name, then fsyncs the directories. */
  publish(): void {
    this.#closeAll();
    const dirs = new Set<string>();
    for (const f of this.#files) {
      try {
        fs.renameSync(f.temp, f.final);
      } catch (err) {
        throw describeIoError(`renaming ${f.temp}`, err);
      }
      dirs.add(path.dirname(f.final));
    }
    this.#files = [];
    for (const d of dirs) fsyncDir(d);
  }

  /** Removes every temporary file (safe to call from a signal handler, and more than once). */
  discard(): void {
    this.#closeAll();
    for (const f of this.#files) fs.rmSync(f.temp, { force: true });
    this.#files = [];
  }

  #closeAll(): void {
    for (const f of this.#files) {
      if (f.fd !== null) {
        try {
          fs.closeSync(f.fd);
        } catch { /* already closed by a stream */ }
        f.fd = null;
      }
    }
  }
}

/** Makes `gen` the chain's last complete generation: temp, fsync, rename, fsync directory. */
export function writeVersion(chain: Chain, gen: number): void {
  const pending = new PendingFiles();
  try {
    pending.writeFile(chain.verPath, encodeVersion(gen));
    pending.publish();
  } catch (err) {
    pending.discard();
    throw err;
  }
}

/**
 * Removes what failed or killed runs left for generation `gen` (files past `.ver` are never complete)
 * and temporary files of processes that no longer run. Returns what it removed.
 */
export function removeLeftovers(chain: Chain, gen: number): string[] {
  const removed: string[] = [];
  for (const p of chain.generationPaths(gen)) {
    if (fs.existsSync(p)) {
      fs.rmSync(p, { force: true });
      removed.push(p);
    }
  }
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(chain.dir);
  } catch (err) {
    throw describeIoError(`reading directory ${chain.dir}`, err);
  }
  for (const e of entries) {
    const m = TEMP_RE.exec(e);
    if (!m || !e.startsWith(chain.name + ".") || isAlive(Number(m[1]))) continue;
    const p = path.join(chain.dir, e);
    fs.rmSync(p, { force: true });
    removed.push(p);
  }
  return removed;
}

export function isAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
