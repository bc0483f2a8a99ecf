/** Whether a process of this host still exists (kill 0; EPERM: it does, another user's). */
import process from "node:process";

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
