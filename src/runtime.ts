/**
 * The runtime adapter: the only module that knows whether it runs under Deno, Bun or a compiled binary.
 * Everything else uses `node:` built-ins.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const isDeno = "Deno" in globalThis;

/**
 * Whether fs.write reports the bytes a write got into a non-blocking pipe before it filled up. Deno's
 * writes the first part, then fails with EAGAIN and the count is lost; Bun's (and Node's) return it.
 */
export const writesReportPartialCount = !isDeno;

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

/**
 * Opens a file descriptor inherited from the parent (`5< old.md5`, `6> new.md5`).
 * When the parent did not pass it, the runtime may hold that number for itself (Deno: an epoll instance
 * or a socket; Bun: a duplicate of stdout), so only a file, device or pipe that is not one of our stdio
 * streams counts as inherited. Deno's node:fs only knows descriptors it opened itself, so there the
 * descriptor is reopened through /dev/fd. Returns a descriptor to use, or null when `fd` was not passed.
 */
export function openInheritedFd(fd: number, mode: "r" | "w"): number | null {
  const link = `/proc/self/fd/${fd}`;
  let target: string, st: fs.Stats;
  try {
    target = fs.readlinkSync(link);
    st = fs.statSync(link);
  } catch {
    return null;
  }
  if (!target.startsWith("/") && !target.startsWith("pipe:")) return null;
  for (const std of [0, 1, 2]) {
    try {
      const s = fs.statSync(`/proc/self/fd/${std}`);
      if (s.dev === st.dev && s.ino === st.ino) return null;
    } catch { /* not open */ }
  }
  return isDeno ? fs.openSync(`/dev/fd/${fd}`, mode === "r" ? "r" : "a") : fd;
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
 * lets such buffers pile up to a few hundred MB before it runs; this keeps peak RSS near 100 MB for a cost
 * of about 1%. Elsewhere (Deno without --expose-gc) it does nothing.
 */
export function noteGarbage(bytes: number): void {
  garbage += bytes;
  if (garbage < 32 << 20) return;
  garbage = 0;
  (globalThis as { Bun?: { gc(force: boolean): void } }).Bun?.gc(true);
}
