/**
 * An exclusive flock(2) on a descriptor this process holds, taken without waiting. Node and Bun have no call
 * for it (Deno's FsFile.lock is Deno-only), so util-linux's `flock -n FD` is run on the descriptor: the child
 * shares our open file description, locks it and exits, and the lock stays with the description, that is
 * with our descriptor, until we close it or die (the kernel releases it then, whoever else reuses the PID).
 * docs/architecture.md ("Locks") says why this and not FFI.
 */
import { spawnSync } from "node:child_process";
import { BlockdiffError } from "../errors.ts";

/** True when the lock was taken; false when another open file description holds it. */
export function tryLockExclusive(fd: number, what: string): boolean {
  const r = spawnSync("flock", ["--nonblock", "--exclusive", "3"], {
    stdio: ["ignore", "ignore", "pipe", fd],
  });
  if (r.status === 0) return true;
  if (r.status === 1) return false;
  const why = r.error
    ? ((r.error as NodeJS.ErrnoException).code === "ENOENT"
      ? "the flock program (util-linux) is not installed"
      : r.error.message)
    : (r.stderr?.toString().trim().split("\n").at(-1) || `flock exited with ${r.status ?? r.signal}`);
  throw new BlockdiffError(`cannot lock ${what}: ${why}`);
}
