/**
 * The agent's copy on the remote host: this very executable, uploaded once into
 * ~/.cache/blockdiff/SHA256/blockdiff (mode 0700) and verified by its hash before it is put in place.
 */
import * as fs from "node:fs";
import process from "node:process";
import { BlockdiffError } from "../errors.ts";
import { VERSION } from "../version.ts";
import type { SshConnection } from "../ssh/connect.ts";
import { selfSha256 } from "./self_sha.ts";

/** A path in the remote's agent cache, quoted for its shell ($HOME expands there, nothing else does). */
export const cachePath = (...below: string[]) =>
  `"$HOME/.cache/blockdiff${below.map((p) => `/${p}`).join("")}"`;
export const cachedCommand = (sha: string) => cachePath(sha, "blockdiff");

/** Uploads this executable into the remote's agent cache; the copy is put in place only if its hash is ours. */
export async function uploadAgent(conn: SshConnection, log: (line: string) => void): Promise<void> {
  const sha = await selfSha256();
  const dir = cachePath(sha);
  log(`uploading blockdiff ${VERSION} to ${conn.target} (${dir})`);
  const tmp = cachePath(sha, "blockdiff.upload.$$");
  const up = await conn.run(
    `umask 077 && mkdir -p ${dir} && chmod 700 ${cachePath()} ${dir} && cat > ${tmp} && ` +
      `[ "$(${sha256Command(tmp)})" = ${sha} ] && chmod 700 ${tmp} && mv -f ${tmp} ${
        cachedCommand(sha)
      } || ` +
      `{ rm -f ${tmp}; exit 1; }`,
    fs.createReadStream(process.execPath),
  );
  if (up.code !== 0) {
    throw new BlockdiffError(
      `uploading the agent to ${conn.target} failed: ${up.stderr.trim() || `exit ${up.code}`}`,
    );
  }
}

/**
 * Shell text printing the SHA-256 (hex) of `file` (already quoted): openssl where the remote has it (SHA
 * instructions, several times faster), else coreutils' sha256sum.
 */
export function sha256Command(file: string): string {
  return `{ openssl dgst -sha256 -r ${file} 2>/dev/null || sha256sum ${file}; } | cut -c1-64`;
}
