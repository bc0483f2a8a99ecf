/**
 * How to start the agent on the remote host. The compiled binary: a `blockdiff` of the same version on the
 * remote PATH, else this very executable, uploaded once into ~/.cache/blockdiff/SHA256/ (mode 0700) and
 * verified by its hash. From source (deno run), the same command line as here: the remote must be this
 * machine or hold the same checkout (that is what the tests do).
 */
import * as fs from "node:fs";
import process from "node:process";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { isCompiledBinary, selfCommand } from "../runtime.ts";
import { VERSION } from "../version.ts";
import type { SshConnection } from "./connect.ts";
import { shellCommand } from "./quote.ts";
import type { Answers, Questions } from "./remote_probe.ts";
import { selfSha256 } from "./self_sha.ts";

export interface AgentLocation {
  /** Shell text that runs the agent (already quoted). */
  command: string;
  how: "found" | "cached" | "uploaded" | "source";
  /**
   * Checks that the agent is this executable, byte for byte (started on the first call, the same promise
   * after; the caller starts it right after the agent's own command). A cached copy of the right size runs
   * while its SHA-256 is checked on the remote (0.1-0.5 s for 110 MB); the run must await this before it
   * keeps anything. It rejects if the copy is not ours (that copy is then removed).
   */
  verify(): Promise<void>;
}

const VERIFIED = () => Promise.resolve();

/** A path in the remote's agent cache, quoted for its shell ($HOME expands there, nothing else does). */
const cachePath = (...below: string[]) => `"$HOME/.cache/blockdiff${below.map((p) => `/${p}`).join("")}"`;
const cachedCommand = (sha: string) => cachePath(sha, "blockdiff");

/**
 * What locateAgent needs to know about the remote host, as questions for askRemote (asked together with
 * the caller's own): the version of a `blockdiff` on its PATH, the size of the cached copy.
 */
export async function agentQuestions(): Promise<Questions> {
  if (!isCompiledBinary()) return {};
  const cached = cachedCommand(await selfSha256());
  return {
    "agent-on-path": "blockdiff --version </dev/null 2>/dev/null",
    "agent-cached-size": `test -x ${cached} && stat -L -c %s ${cached} 2>/dev/null`,
  };
}

/**
 * `verifyFirst`: a cached copy is checked before it runs at all (snapshot runs: the agent runs lvcreate
 * and lvremove there), and replaced if it fails; otherwise the check overlaps the dump.
 */
export async function locateAgent(
  conn: SshConnection,
  answers: Answers,
  log: (line: string) => void,
  verifyFirst = false,
): Promise<AgentLocation> {
  if (!isCompiledBinary()) return { command: shellCommand(selfCommand()), how: "source", verify: VERIFIED };
  const found = answers.get("agent-on-path");
  if (found.code === 0 && found.out.trim() === `blockdiff ${VERSION}`) {
    return { command: "blockdiff", how: "found", verify: VERIFIED };
  }
  const present = answers.get("agent-cached-size");
  const sha = await selfSha256();
  const dir = cachePath(sha);
  const command = cachedCommand(sha);
  if (present.code === 0 && Number(present.out.trim()) === fs.statSync(process.execPath).size) {
    const check = () => conn.run(sha256Command(command)).then((r) => r.stdout.toString().trim() === sha);
    if (!verifyFirst) {
      let verified: Promise<void> | null = null;
      const verify = () =>
        verified ??= check().then(async (ok) => {
          if (ok) return;
          await conn.run(`rm -rf ${dir}`);
          throw new IntegrityError(
            `the cached agent on ${conn.target} (${dir}) is not this blockdiff (SHA-256 differs): nothing ` +
              `was kept from it; it was removed, the next run uploads a fresh copy`,
          );
        });
      return { command, how: "cached", verify };
    }
    if (await check()) return { command, how: "cached", verify: VERIFIED };
  }
  log(`uploading blockdiff ${VERSION} to ${conn.target} (${dir})`);
  const tmp = cachePath(sha, "blockdiff.upload.$$");
  const up = await conn.run(
    `umask 077 && mkdir -p ${dir} && chmod 700 ${cachePath()} ${dir} && cat > ${tmp} && ` +
      `[ "$(${sha256Command(tmp)})" = ${sha} ] && chmod 700 ${tmp} && mv -f ${tmp} ${command} || ` +
      `{ rm -f ${tmp}; exit 1; }`,
    fs.createReadStream(process.execPath),
  );
  if (up.code !== 0) {
    throw new BlockdiffError(
      `uploading the agent to ${conn.target} failed: ${up.stderr.trim() || `exit ${up.code}`}`,
    );
  }
  return { command, how: "uploaded", verify: VERIFIED };
}

/**
 * Shell text printing the SHA-256 (hex) of `file` (already quoted): openssl where the remote has it (SHA
 * instructions: 110 MB in 0.1 s here), else coreutils' sha256sum (0.44 s).
 */
export function sha256Command(file: string): string {
  return `{ openssl dgst -sha256 -r ${file} 2>/dev/null || sha256sum ${file}; } | cut -c1-64`;
}
