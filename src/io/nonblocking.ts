/**
 * Descriptors that may be non-blocking pipes: another process sharing the pipe can have made it so (Bun
 * does that to the stdio it uses; OpenSSH to its own). A read or write there fails with EAGAIN when the
 * pipe is empty or full; this waits and tries again, with a pause that grows to 20 ms while the other side
 * stays away.
 */

/** What an attempt returns when the descriptor said EAGAIN (nothing was transferred). */
export const AGAIN = Symbol("EAGAIN");

export function isEagain(err: unknown): boolean {
  return (err as NodeJS.ErrnoException)?.code === "EAGAIN";
}

export async function whenReady<T>(attempt: () => Promise<T | typeof AGAIN>): Promise<T> {
  for (let pause = 1;; pause = Math.min(20, pause * 2)) {
    const r = await attempt();
    if (r !== AGAIN) return r;
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}
