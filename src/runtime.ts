/**
 * The runtime adapter: the only module that knows whether it runs under Deno, Bun or a compiled binary.
 * Everything else uses `node:` built-ins.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const isDeno = "Deno" in globalThis;

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
 * Deno's node:fs only knows descriptors it opened itself, so there we reopen it through /dev/fd.
 * Returns a descriptor of our own, or null when `fd` is not open.
 */
export function openInheritedFd(fd: number, mode: "r" | "w"): number | null {
  if (!isDeno) {
    try {
      fs.fstatSync(fd);
      return fd;
    } catch {
      return null;
    }
  }
  try {
    return fs.openSync(`/dev/fd/${fd}`, mode === "r" ? "r" : "a");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
    throw err;
  }
}
