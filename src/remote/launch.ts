/**
 * Starting the agent on the remote host: one SSH command finds it, checks it and runs it. Every SSH command
 * starts the user's login shell there, which may read start-up files (bash does, even for `ssh host cmd`,
 * and they can take a good part of a second), so nothing is asked in a shell of its own. The command runs,
 * in this order:
 * - the cached copy of this executable (install.ts) if it has the right size; its SHA-256 is computed
 *   by a background job of the same shell while the agent starts, and comes back as one line on stderr
 *   (`verifyFirst`: computed before the agent runs at all; snapshot runs, where it runs lvcreate);
 * - else a `blockdiff` of the same version on the remote PATH;
 * - else nothing: the caller uploads this executable and starts again.
 * Before the agent's own output, the shell prints one tag byte that says which of these it did. From
 * source (deno run), the command line is the same as here: the remote must be this machine or hold the same
 * checkout (that is what the tests do).
 *
 * The hash check guards against a damaged or different copy (a disk error, a file changed by hand), not
 * against someone who can write this account's files: they could change its shell start-up as well.
 */
import * as fs from "node:fs";
import process from "node:process";
// @ts-types="../ssh/ssh2.d.ts"
import type { ClientChannel } from "ssh2";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { isCompiledBinary, selfCommand } from "../runtime.ts";
import { VERSION } from "../version.ts";
import { cachedCommand, cachePath, sha256Command, uploadAgent } from "./install.ts";
import type { SshConnection } from "../ssh/connect.ts";
import { shellCommand, shellQuote } from "../ssh/quote.ts";
import { selfSha256 } from "./self_sha.ts";

/** The byte the launch command prints before the agent's output. */
export const LAUNCH_TAG = {
  /** The cached copy runs; its SHA-256 comes on stderr. */
  cached: "C",
  /** The cached copy runs, its SHA-256 checked first. */
  verified: "V",
  /** A `blockdiff` of this version on the remote PATH runs. */
  onPath: "P",
  /** From source: this machine's command line runs. */
  source: "S",
  /** No agent there. */
  missing: "U",
} as const;

/** The stderr line of the background hash job: this prefix, then the hex digest. */
export const HASH_LINE = "blockdiff-agent-sha256";

export interface StartedAgent {
  channel: ClientChannel;
  /** The agent's stdout, after the tag. */
  output: AsyncIterable<Uint8Array>;
  /** Exit status once the channel is closed. */
  closed: Promise<{ code: number | null; signal?: string }>;
  /** What the agent wrote on stderr (without the hash line). */
  stderr(): string;
  /**
   * Resolves once the running copy is known to be this executable (at once, unless it is a cached copy
   * checked alongside). Rejects with an IntegrityError if it is not (that copy is then removed), with a
   * plain error if the check never answered (connection lost). The run must await it before it keeps
   * anything.
   */
  verified: Promise<void>;
}

/** What the remote copy must be: this executable (its SHA-256, size and version). */
export interface AgentIdentity {
  sha: string;
  size: number;
  version: string;
}

/** This executable's identity; null when running from source. */
async function selfIdentity(): Promise<AgentIdentity | null> {
  if (!isCompiledBinary()) return null;
  return { sha: await selfSha256(), size: fs.statSync(process.execPath).size, version: VERSION };
}

export interface LaunchOptions {
  /** The agent's command line (agent_args.ts). */
  args: string[];
  /** Words before the agent's command (env SSH_BLOCKDIFF_PREFIX). */
  prefix: string;
  /** Check a cached copy's SHA-256 before it runs (snapshot runs, where it runs lvcreate). */
  verifyFirst: boolean;
  /** What the remote copy must be; null from source (this process's own command line runs). */
  self: AgentIdentity | null;
}

/** The shell text that finds and runs the agent (see the top of this file). */
export function launchCommand(o: LaunchOptions): string {
  const { args, prefix, verifyFirst, self } = o;
  const run = (tag: string, command: string) =>
    `printf ${tag}; ${`${prefix} ${command}`.trim()} ${shellCommand(args)}`;
  if (!self) return run(LAUNCH_TAG.source, shellCommand(selfCommand()));
  const hash = `$(${sha256Command('"$agent"')})`;
  const useCached = verifyFirst
    ? `if [ -x "$agent" ] && [ "${hash}" = ${self.sha} ]; then\n  ${run(LAUNCH_TAG.verified, '"$agent"')}\n`
    : `if [ -x "$agent" ] && [ "$(stat -L -c %s "$agent" 2>/dev/null)" = ${self.size} ]; then\n` +
      `  { printf '${HASH_LINE} %s\\n' "${hash}"; } </dev/null >&2 &\n  ${
        run(LAUNCH_TAG.cached, '"$agent"')
      }\n`;
  return `agent=${cachedCommand(self.sha)}\n` + useCached +
    `elif [ "$(blockdiff --version </dev/null 2>/dev/null)" = ${
      shellQuote(`blockdiff ${self.version}`)
    } ]; then\n` +
    `  ${run(LAUNCH_TAG.onPath, "blockdiff")}\n` +
    `else printf ${LAUNCH_TAG.missing}; fi`;
}

/** Starts the agent with `args`, uploading this executable first where the remote has none. */
export async function startAgent(
  o: { conn: SshConnection; args: string[]; log: (line: string) => void; verifyFirst: boolean },
): Promise<StartedAgent> {
  const { conn, log } = o;
  const prefix = process.env.SSH_BLOCKDIFF_PREFIX ?? "";
  const command = launchCommand({
    args: o.args,
    prefix,
    verifyFirst: o.verifyFirst,
    self: await selfIdentity(),
  });
  for (let uploaded = false;; uploaded = true) {
    const channel = await conn.exec(command);
    let stderr = "";
    channel.stderr.on("data", (d: Buffer) => stderr += d);
    const closed = new Promise<{ code: number | null; signal?: string }>((resolve) =>
      channel.on("close", (code: number | null, signal?: string) => resolve({ code, signal }))
    );
    const withoutHashLine = () => stderr.replace(new RegExp(`^${HASH_LINE} .*\n?`, "m"), "");
    const chunks = (channel as AsyncIterable<Uint8Array>)[Symbol.asyncIterator]();
    const first = await chunks.next();
    const tag = first.done ? null : String.fromCharCode(first.value[0]);
    const drained = async () => {
      while (!(await chunks.next()).done);
      return await closed;
    };
    if (tag === LAUNCH_TAG.missing && !uploaded) {
      await drained();
      await uploadAgent(conn, log);
      continue;
    }
    const failed = (what: string) =>
      new BlockdiffError(`ssh ${conn.target}: the remote shell did not start the agent (${what})`);
    if (first.done || tag === LAUNCH_TAG.missing) {
      const exit = await drained();
      const why = first.done ? `exit ${exit.code ?? exit.signal}` : "no agent after the upload";
      throw failed(`${why}: ${lastLine(withoutHashLine()) || "no message"}`);
    }
    if (!Object.values(LAUNCH_TAG).some((t) => t === tag)) {
      channel.destroy();
      throw failed(`it printed ${JSON.stringify(Buffer.from(first.value.subarray(0, 80)).toString())}`);
    }
    const rest = first.value.subarray(1);
    return {
      channel,
      output: (async function* () {
        if (rest.length) yield rest;
        for (let c = await chunks.next(); !c.done; c = await chunks.next()) yield c.value;
      })(),
      closed,
      stderr: withoutHashLine,
      verified: tag === LAUNCH_TAG.cached
        ? checkHash(conn, channel, () => stderr, closed)
        : Promise.resolve(),
    };
  }
}

/** The cached copy's SHA-256, from the background job's line on stderr, against this executable's. */
async function checkHash(
  conn: SshConnection,
  channel: ClientChannel,
  stderr: () => string,
  closed: Promise<unknown>,
): Promise<void> {
  const line = new RegExp(`^${HASH_LINE} (.*)\n`, "m");
  const reported = await new Promise<string | null>((resolve) => {
    const look = () => {
      const m = line.exec(stderr());
      if (m) resolve(m[1]);
      return m;
    };
    if (look()) return;
    const onData = () => look() && channel.stderr.off("data", onData);
    channel.stderr.on("data", onData);
    closed.then(() => resolve(line.exec(stderr())?.[1] ?? null));
  });
  if (reported === null) {
    throw new BlockdiffError(`ssh ${conn.target}: the cached agent's SHA-256 check did not answer`);
  }
  const sha = await selfSha256();
  if (reported === sha) return;
  const dir = cachePath(sha);
  await conn.run(`rm -rf ${dir}`);
  throw new IntegrityError(
    `the cached agent on ${conn.target} (${dir}) is not this blockdiff (SHA-256 differs): nothing ` +
      `was kept from it; it was removed, the next run uploads a fresh copy`,
  );
}

export function lastLine(s: string): string {
  return s.trim().split("\n").at(-1) ?? "";
}
