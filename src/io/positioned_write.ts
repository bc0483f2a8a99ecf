/**
 * Positioned writes into a file's page cache in pieces of 16 KiB. A single large write into new pages can
 * cost several times the kernel time of the same bytes in small writes: on the development machine (Linux
 * 6.18 in a microVM) `dd bs=2M` into a new file took 1.1-2.8 s per GiB, `dd bs=16k` 0.56 s (large folios;
 * docs/performance.md "Restore and merge").
 */
import * as fs from "node:fs";

export const WRITE_PIECE = 16384;

/** Writes all of `bytes` at `position`, piece by piece. */
export function writeAtSync(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.length;) {
    done += fs.writeSync(fd, bytes, done, Math.min(WRITE_PIECE, bytes.length - done), position + done);
  }
}
