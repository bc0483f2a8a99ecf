/**
 * Starts the disk writing of a file's dirty pages early, while more is being written: an fdatasync in the
 * background after every `every` bytes (one at a time). Without it the page cache holds all of a 1 GiB
 * restore or full backup until the final fsync, which then waits for the whole flush after all
 * the other work; with it the disk works alongside. It does not replace the final fsync. A failed run may
 * close the file while a sync is in flight: that sync then fails (EBADF, ignored) or flushes whichever file
 * got the descriptor number next; it changes no data either way.
 */
import * as fs from "node:fs";

export class EarlyWriteback {
  #since = 0;
  #inFlight: Promise<void> | null = null;
  #error: Error | null = null;

  constructor(private readonly fd: number, private readonly every = 64 << 20) {}

  /** Notes `n` bytes written; throws the error of an earlier background sync. */
  wrote(n: number): void {
    if (this.#error) throw this.#error;
    this.#since += n;
    if (this.#since < this.every || this.#inFlight) return;
    this.#since = 0;
    this.#inFlight = new Promise((resolve) =>
      fs.fdatasync(this.fd, (err) => {
        this.#error ??= err;
        this.#inFlight = null;
        resolve();
      })
    );
  }

  /** Waits for the sync in flight (before the final fsync); throws the error of a background sync. */
  async settle(): Promise<void> {
    await this.#inFlight;
    if (this.#error) throw this.#error;
  }
}
