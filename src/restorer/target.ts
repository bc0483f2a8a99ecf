/**
 * Where a restore writes, and what it refuses to touch. Only a regular file is ever replaced, by renaming a
 * finished temporary file over it (an existing one only with --force); `-` is stdout; FIFOs and character
 * devices are written in order; a block device is written in place unless the system uses it (mounted,
 * swap, part of another device: refused, and opened O_EXCL so nothing can mount it meanwhile). A symbolic
 * link is followed only to a device or FIFO, never replaced; the chain's own files are refused.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { isatty } from "node:tty";
import { BlockdiffError, describeIoError, UsageError } from "../errors.ts";
import { deviceInUse, sizeOf } from "../io/block_device.ts";
import { tryLockExclusive } from "../io/flock.ts";
import { exclusiveDeviceFlag } from "../runtime.ts";
import type { Chain } from "../store/chain.ts";
import { isChainFile } from "../store/chain_state.ts";
import { PendingFiles } from "../store/commit.ts";
import { pidAlive } from "../io/pid_alive.ts";

export interface RestoreTarget {
  /** A device or stream, written where it lies: a failure leaves what was written before it. */
  inPlace: boolean;
  /** Whether the data can be fsynced (files, block devices; not pipes and character devices). */
  sync: boolean;
  /** Written at positions (a file or block device), not in order. */
  positioned: boolean;
  /** A new file: what is not written reads as zeros (a hole) once `finish` set its size. */
  holes: boolean;
  fd: number;
  /** Every block was written: the file is put in place, the descriptor closed. */
  finish(): void;
  /** The restore failed: a temporary file is removed, the descriptor closed. */
  abort(): void;
}

export interface TargetOptions {
  target: string;
  /** Replace an existing regular file. */
  force: boolean;
  /** The image's size, where the chain records it (a device must hold it). */
  size: number | null;
  chain: Chain;
}

/** `-` and /dev/stdout: the image on standard output, in order. */
export function isStdout(target: string): boolean {
  return target === "-" || target === "/dev/stdout" || target === "/dev/fd/1";
}

export async function openRestoreTarget(o: TargetOptions): Promise<RestoreTarget> {
  const { target } = o;
  if (isStdout(target)) {
    if (isatty(1)) throw new UsageError("restore: refusing to write a binary image to a terminal");
    return stream(1, false);
  }
  if (isChainFile(o.chain, target)) {
    throw new UsageError(`restore target ${target} is a file of the chain ${o.chain.path("")} itself`);
  }
  let st: fs.Stats | null = null;
  try {
    st = fs.lstatSync(target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      throw describeIoError(`restore target ${target}`, err);
    }
  }
  if (st === null) return newFile(target, false);
  if (st.isSymbolicLink()) {
    let to: fs.Stats | null = null;
    try {
      to = fs.statSync(target);
    } catch { /* dangling */ }
    if (!to || !(to.isFIFO() || to.isCharacterDevice() || to.isBlockDevice())) {
      throw new UsageError(
        `restore target ${target} is a symbolic link${to ? "" : " to nothing"}: give the path of the file ` +
          `itself (a link is never replaced), or - for standard output`,
      );
    }
    st = to;
  }
  if (st.isDirectory()) throw new BlockdiffError(`restore target ${target} is a directory`);
  if (st.isFile()) {
    if (!o.force) {
      throw new UsageError(`restore target ${target} exists: give --force to replace it`);
    }
    return newFile(target, true);
  }
  if (st.isBlockDevice()) return blockDevice(target, st, o.size);
  if (st.isFIFO() || st.isCharacterDevice()) {
    const fd = await openAsync(target, fs.constants.O_WRONLY); // a FIFO waits here for its reader
    if (isatty(fd)) {
      fs.closeSync(fd);
      throw new UsageError(`restore: refusing to write a binary image to the terminal ${target}`);
    }
    return stream(fd, true);
  }
  throw new UsageError(`restore target ${target} is a socket, not a file, device or FIFO`);
}

/** Written in order to a descriptor that cannot be synced or replaced. */
function stream(fd: number, owned: boolean): RestoreTarget {
  const close = () => owned && fs.closeSync(fd);
  return { inPlace: true, sync: false, positioned: false, holes: false, fd, finish: close, abort: close };
}

/**
 * A temporary file beside `target`, renamed over it at the end (`replace`: an existing file; otherwise a
 * file that appeared meanwhile is not replaced). The temporary file stays locked while it is written, so
 * the next restore to `target` can tell the temporary files of dead runs, which it removes, from live ones.
 */
function newFile(target: string, replace: boolean): RestoreTarget {
  removeDeadTemps(target);
  const pending = new PendingFiles();
  const fd = pending.create(target);
  try {
    tryLockExclusive(fd, `${target}'s temporary file`);
  } catch (err) {
    pending.discard();
    throw err;
  }
  return {
    inPlace: false,
    sync: true,
    positioned: true,
    holes: true,
    fd,
    finish: () => pending.publish(replace ? "rename" : "link"),
    abort: () => pending.discard(),
  };
}

function removeDeadTemps(target: string): void {
  const dir = path.dirname(target), prefix = `${path.basename(target)}.tmp-`;
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(dir).filter((e) => e.startsWith(prefix) && /^\d+$/.test(e.slice(prefix.length)));
  } catch { /* creating the temporary file will say what is wrong */ }
  for (const e of entries) {
    const p = path.join(dir, e);
    let fd: number;
    try {
      fd = fs.openSync(p, "r");
    } catch {
      continue;
    }
    try {
      // unlocked and its writer's PID gone: a dead run's (a live writer locks it a moment after creating it;
      // a PID reused by another process only keeps the file a while longer)
      if (tryLockExclusive(fd, p) && !pidAlive(Number(e.slice(prefix.length)))) fs.rmSync(p, { force: true });
    } finally {
      fs.closeSync(fd);
    }
  }
}

function blockDevice(target: string, st: fs.Stats, size: number | null): RestoreTarget {
  const busy = deviceInUse(st);
  if (busy) throw new BlockdiffError(`restore target ${target} is in use: ${busy}`);
  const devSize = sizeOf(st);
  if (size !== null && devSize !== null && devSize < size) {
    throw new BlockdiffError(`restore target ${target} holds ${devSize} bytes, the image needs ${size}`);
  }
  let fd: number;
  try {
    // O_EXCL: the kernel refuses a device it uses, and lets nothing mount it while we write
    fd = fs.openSync(target, fs.constants.O_RDWR | exclusiveDeviceFlag);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EBUSY") {
      throw new BlockdiffError(`restore target ${target} is in use (the kernel refused exclusive access)`);
    }
    throw describeIoError(`opening restore target ${target}`, err);
  }
  const close = () => fs.closeSync(fd);
  return { inPlace: true, sync: true, positioned: true, holes: false, fd, finish: close, abort: close };
}

/** open(2) off the main thread, which stays free to handle signals while a FIFO waits for its reader. */
function openAsync(p: string, flags: number): Promise<number> {
  return new Promise((resolve, reject) =>
    fs.open(
      p,
      flags,
      (err, fd) => err ? reject(describeIoError(`opening restore target ${p}`, err)) : resolve(fd),
    )
  );
}
