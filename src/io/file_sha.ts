/** SHA-256 of a file's bytes, read in 1 MiB pieces (a digest file may be large). */
import { createHash } from "node:crypto";
import * as fs from "node:fs";

/** Hex SHA-256 of file `p`; node:fs errors are thrown as they are (the callers tell ENOENT apart). */
export function sha256OfFile(p: string): string {
  const hash = createHash("sha256"), buf = new Uint8Array(1 << 20), fd = fs.openSync(p, "r");
  try {
    for (let n; (n = fs.readSync(fd, buf)) > 0;) hash.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return hash.digest("hex");
}

/** As sha256OfFile; null when the file cannot be read (a cache to fill again, a file that is no match). */
export function sha256OfFileOrNull(p: string): string | null {
  try {
    return sha256OfFile(p);
  } catch {
    return null;
  }
}
