/**
 * The runtime adapter: the only module that knows whether it runs under Deno, Bun or a compiled binary.
 * Everything else uses `node:` built-ins.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BlockdiffError } from "./errors.ts";

const isDeno = "Deno" in globalThis;
const isBun = "Bun" in globalThis;

/**
 * Whether fs.write reports the bytes a write got into a non-blocking pipe before it filled up. Deno's
 * writes the first part, then fails with EAGAIN and the count is lost; Bun's (and Node's) return it.
 */
export const writesReportPartialCount = !isDeno;

/**
 * O_EXCL for opening a block device: the kernel then refuses a device it uses (mounted, swap, held by
 * device-mapper) and lets nothing claim it while it is open. Deno's node:fs turns O_EXCL into "create new"
 * (O_CREAT|O_EXCL), which fails on every existing file, so from source under Deno it is left out and the
 * checks of /proc and /sys (io/block_device.ts) guard alone.
 */
export const exclusiveDeviceFlag = isDeno ? 0 : fs.constants.O_EXCL;

/** True inside a `bun build --compile` binary. */
export function isCompiledBinary(): boolean {
  return (process.argv[1] ?? "").startsWith("/$bunfs/") || import.meta.url.includes("/$bunfs/");
}

/** The command-line arguments after the program name, whatever runs us. */
export function programArgs(): string[] {
  return process.argv.slice(2);
}

/** argv prefix that runs this program again (used to start the agent and by tests). */
export function selfCommand(): string[] {
  if (isCompiledBinary()) return [process.execPath];
  const main = path.join(path.dirname(fileURLToPath(import.meta.url)), "..", "main.ts");
  if (isDeno) return [process.execPath, "run", "-A", main];
  return [process.execPath, main];
}

const O_CLOEXEC = 0o2000000;

/**
 * Descriptors 5 and 6 as the caller passed them (`5< old.md5`, `6> new.md5`), looked at once, when this
 * module loads, before the program opens anything. The runtime may hold those numbers itself when the caller
 * left them free, so what the runtime holds is told apart: Bun's own descriptors at start-up are its event
 * loop's (anon_inode: epoll, eventfd), and it marks every inherited descriptor close-on-exec; Deno opens
 * all of its own close-on-exec, while exec(2) left only descriptors without that flag to the caller's.
 * Nothing else is guessed: a pipe, a socket, /dev/null or the same file as stdout all count as passed.
 */
const inheritedAtStart = new Map([5, 6].map((fd) => [fd, passedByCaller(fd)]));

function passedByCaller(fd: number): boolean {
  let target: string, info: string;
  try {
    target = fs.readlinkSync(`/proc/self/fd/${fd}`);
    info = fs.readFileSync(`/proc/self/fdinfo/${fd}`, "utf8");
  } catch {
    return false; // not open
  }
  if (target.startsWith("anon_inode:")) return false;
  const flags = parseInt(/^flags:\s*([0-7]+)/m.exec(info)?.[1] ?? "0", 8);
  return isBun || (flags & O_CLOEXEC) === 0;
}

/**
 * A descriptor the caller passed (5 or 6), ready to use, or null when it was not passed. Deno's node:fs
 * only knows descriptors it opened itself, so there it is reopened through /dev/fd (which a socket cannot
 * be: that fails with one line).
 */
export function openInheritedFd(fd: 5 | 6, mode: "r" | "w"): number | null {
  if (!inheritedAtStart.get(fd)) return null;
  if (!isDeno) return fd;
  try {
    return fs.openSync(`/dev/fd/${fd}`, mode === "r" ? "r" : "a");
  } catch (err) {
    throw new BlockdiffError(
      `descriptor ${fd} cannot be used when blockdiff runs from source under Deno ` +
        `(${(err as Error).message}); use the built binary, or --${fd === 5 ? "old" : "new"}-digest FILE`,
    );
  }
}

/**
 * URL of a module given by its path from the project root (for `new Worker`). In the compiled binary every
 * entry point lives under /$bunfs/root/ with its source path; from source, it is next to this file's parent.
 */
export function moduleUrl(fromRoot: string): URL {
  if (isCompiledBinary()) return new URL(fromRoot, "file:///$bunfs/root/");
  return new URL(`../${fromRoot}`, import.meta.url);
}

let garbage = 0;

/**
 * Notes `bytes` of short-lived buffers (compressed pieces, decompressed chunks, network reads) and runs a
 * full garbage collection every 32 MiB of them where the runtime offers one (Bun). Its collector otherwise
 * lets such buffers pile up to a few hundred MB before it runs; this keeps peak RSS low for a small cost
 * (docs/performance.md). Elsewhere (Deno without --expose-gc) it does nothing.
 */
export function noteGarbage(bytes: number): void {
  garbage += bytes;
  if (garbage < 32 << 20) return;
  garbage = 0;
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}
