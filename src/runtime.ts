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

/**
 * Whether a worker thread can use a descriptor the main thread opened. Deno's node:fs only knows the
 * descriptors its own thread opened (EBADF in a worker), Bun's are the process's.
 */
export const workersShareDescriptors = !isDeno;

/** True inside a `bun build --compile` binary. */
export function isCompiledBinary(): boolean {
  return (process.argv[1] ?? "").startsWith("/$bunfs/") || import.meta.url.includes("/$bunfs/");
}

/** The command-line arguments after the program name, whatever runs us. */
export function programArgs(): string[] {
  return process.argv.slice(2);
}

/**
 * The name this program was invoked as: the basename of argv[0] as the caller passed it (a symlink's or a
 * hard link's own name, `exec -a NAME`), which Bun and Deno both give as process.argv0 (process.execPath is
 * the binary a symlink points to, and process.argv[0] the runtime's own name).
 */
export function invokedName(): string {
  return path.basename(process.argv0 ?? "");
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

/** What a program tells the kernel about how it reads a file (posix_fadvise). */
export type FileAdvice = "random" | "willneed" | "dontneed";
const ADVICE: Record<FileAdvice, number> = { random: 1, willneed: 3, dontneed: 4 };

/** The page cache's side of reading a file, which node:fs lacks. */
export interface PageCache {
  /** posix_fadvise on `length` bytes from `offset` (0, 0: the whole file). A hint: what is read stays. */
  advise(fd: number, advice: FileAdvice, offset?: number, length?: number): void;
  /** The share of a file's pages in the page cache (cachestat(2), Linux 6.5), or null when unknown. */
  cachedShare(fd: number, size: number): number | null;
}

let pageCacheCalls: Promise<PageCache> | null = null;

/**
 * The page cache's calls through the runtime's FFI to libc (Bun's bun:ffi, Deno's Deno.dlopen); where libc
 * cannot be loaded, advice does nothing and the cached share is unknown.
 */
export function pageCache(): Promise<PageCache> {
  pageCacheCalls ??= loadPageCache().catch(() => NO_PAGE_CACHE);
  return pageCacheCalls;
}

const NO_PAGE_CACHE: PageCache = { advise: () => {}, cachedShare: () => null };
const SYS_CACHESTAT = 451; // x86-64

async function loadPageCache(): Promise<PageCache> {
  let fadvise: (fd: number, offset: number, length: number, advice: number) => number;
  let cachestat: (fd: number, range: BigUint64Array, out: BigUint64Array) => number;
  if (isBun) {
    const ffi = await import(["bun", "ffi"].join(":")); // not a specifier Deno's type check resolves
    const lib = ffi.dlopen("libc.so.6", {
      posix_fadvise: { args: ["i32", "i64", "i64", "i32"], returns: "i32" },
      syscall: { args: ["i64", "i32", "ptr", "ptr", "i32"], returns: "i64" },
    });
    fadvise = (fd, offset, length, advice) => lib.symbols.posix_fadvise(fd, offset, length, advice);
    cachestat = (fd, range, out) => Number(lib.symbols.syscall(SYS_CACHESTAT, fd, range, out, 0));
  } else if (isDeno) {
    const deno = (globalThis as unknown as { Deno: typeof Deno }).Deno;
    const lib = deno.dlopen(
      "libc.so.6",
      {
        posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
        syscall: { parameters: ["i64", "i32", "buffer", "buffer", "i32"], result: "i64" },
      } as const,
    );
    fadvise = (fd, offset, length, advice) =>
      lib.symbols.posix_fadvise(fd, BigInt(offset), BigInt(length), advice);
    cachestat = (fd, range, out) => Number(lib.symbols.syscall(BigInt(SYS_CACHESTAT), fd, range, out, 0));
  } else return NO_PAGE_CACHE;
  if (process.arch !== "x64") cachestat = () => -1;
  return {
    advise: (fd, advice, offset = 0, length = 0) => void fadvise(fd, offset, length, ADVICE[advice]),
    cachedShare: (fd, size) => {
      if (size === 0) return 1;
      const out = new BigUint64Array(5); // nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted
      if (cachestat(fd, new BigUint64Array([0n, 0n]), out) !== 0) return null;
      return Math.min(1, (Number(out[0]) * 4096) / size);
    },
  };
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
