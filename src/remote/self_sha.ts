/**
 * SHA-256 of this executable (it names and verifies the agent cached on remote hosts). Hashing the whole
 * executable would cost CPU at the start of every remote run, so the result is remembered in
 * ~/.cache/blockdiff/exe.sha256 under the file's identity (device, inode, size, mtime, ctime): any write
 * to the file, a replacement or a touch changes the key and the file is hashed again.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { isCompiledBinary, noteGarbage } from "../runtime.ts";

let selfSha: Promise<string> | null = null;

/** Computed (or looked up) once per process; call early so it overlaps the SSH handshake. */
export function selfSha256(): Promise<string> {
  if (!isCompiledBinary()) return Promise.resolve("");
  return selfSha ??= (async () => {
    const key = identity(process.execPath);
    const remembered = recall(key);
    if (remembered) return remembered;
    const h = createHash("sha256");
    for await (const chunk of fs.createReadStream(process.execPath, { highWaterMark: 1 << 20 })) {
      h.update(chunk);
      noteGarbage(chunk.length);
    }
    const sha = h.digest("hex");
    if (identity(process.execPath) === key) remember(key, sha); // not if it changed while being read
    return sha;
  })();
}

/** Where the sha is remembered (exported for the tests). */
export function shaCacheFile(): string {
  return path.join(os.homedir(), ".cache", "blockdiff", "exe.sha256");
}

function identity(file: string): string {
  const st = fs.statSync(file, { bigint: true });
  return `${file} ${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
}

function recall(key: string): string | null {
  try {
    const [k, sha] = fs.readFileSync(shaCacheFile(), "utf8").split("\n");
    return k === key && /^[0-9a-f]{64}$/.test(sha) ? sha : null;
  } catch {
    return null;
  }
}

/** Best effort (a read-only home only costs the hashing next time); written whole, then renamed. */
function remember(key: string, sha: string): void {
  const file = shaCacheFile(), tmp = `${file}.${process.pid}`;
  try {
    fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    fs.writeFileSync(tmp, `${key}\n${sha}\n`, { mode: 0o600 });
    fs.renameSync(tmp, file);
  } catch {
    fs.rmSync(tmp, { force: true });
  }
}
