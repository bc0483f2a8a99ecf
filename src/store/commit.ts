/**
 * Atomic publication: files are written under temporary names (`FINAL.tmp-PID`, mode 0600) and fsynced, then
 * put in place and the directory fsynced. A chain's files are linked to their final names, which never
 * replaces a file that is already there (rename would); `NAME.ver` is renamed over the old one last.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { BlockdiffError, describeIoError, IntegrityError } from "../errors.ts";
import { encodeVersion } from "../format/ver.ts";
import type { Chain } from "./chain.ts";

export function tempPathFor(final: string): string {
  return `${final}.tmp-${process.pid}`;
}

export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, "r");
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    throw describeIoError(`syncing directory ${dir}`, err);
  }
}

/** How `publish` puts a file in place: `link` never replaces an existing file, `rename` does. */
export type PublishMode = "link" | "rename";

/** A set of files being written; nothing is visible under its final name before `publish`. */
export class PendingFiles {
  #files: { temp: string; final: string; fd: number | null }[] = [];
  #published: string[] = [];

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

  /**
   * Puts every file in place, then fsyncs the directories. With `link`, a final name that already exists
   * fails the publish (IntegrityError); a failure of any step removes the final names this call made.
   */
  publish(mode: PublishMode): void {
    this.#closeAll();
    try {
      for (const f of this.#files) {
        if (mode === "link") linkNoReplace(f.temp, f.final);
        else renameOver(f.temp, f.final);
        this.#published.push(f.final);
      }
      for (const d of new Set(this.#files.map((f) => path.dirname(f.final)))) fsyncDir(d);
    } catch (err) {
      if (mode === "link") this.unpublish();
      throw err;
    }
    this.#files = [];
  }

  /** Removes the files `publish(link)` put in place (their commit failed after it); best effort. */
  unpublish(): void {
    for (const p of this.#published.splice(0)) fs.rmSync(p, { force: true });
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

/** link(2) + unlink of the temporary name; where the filesystem has no hard links, rename after a check. */
function linkNoReplace(temp: string, final: string): void {
  try {
    fs.linkSync(temp, final);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EEXIST") {
      throw new IntegrityError(
        `${final} appeared during this run (another writer that does not take the chain's lock?); ` +
          `nothing of this run was published`,
      );
    }
    if (code !== "EPERM" && code !== "ENOTSUP" && code !== "EOPNOTSUPP" && code !== "ENOSYS") {
      throw describeIoError(`publishing ${final}`, err);
    }
    if (fs.existsSync(final)) return linkNoReplace(temp, final); // reported as EEXIST above
    return renameOver(temp, final);
  }
  try {
    fs.rmSync(temp, { force: true });
  } catch { /* a temporary file of a dead run by then: the next writer removes it */ }
}

function renameOver(temp: string, final: string): void {
  try {
    fs.renameSync(temp, final);
  } catch (err) {
    throw describeIoError(`renaming ${temp}`, err);
  }
}

/** The generation is published (NAME.ver renamed) but the directory could not be synced afterwards. */
export class NotDurableError extends BlockdiffError {}

/** Puts a small file in place whole, replacing the old one: temp, fsync, rename (no directory fsync). */
export function replaceFile(final: string, data: string | Uint8Array): void {
  const temp = tempPathFor(final);
  try {
    const fd = fs.openSync(temp, "wx", 0o600);
    try {
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
}

/**
 * Makes `gen` the chain's last complete generation: NAME.ver replaced (the commit), the directory fsynced.
 * A failure before the rename changes nothing; one after it throws NotDurableError.
 */
export function writeVersion(chain: Chain, gen: number): void {
  replaceFile(chain.verPath, encodeVersion(gen));
  try {
    fsyncDir(chain.dir);
  } catch (err) {
    throw new NotDurableError(
      `${chain.name}.ver now says ${gen}, but ${
        (err as Error).message
      }: the change may not survive a crash ` +
        `of this host; check the disk, then run 'blockdiff verify ${chain.path("")}'`,
    );
  }
}
