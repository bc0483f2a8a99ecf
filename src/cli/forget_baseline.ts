import { BlockdiffError } from "../errors.ts";
import { encodeForgetArgs } from "../remote/agent_args.ts";
import { lastLine, startAgent } from "../remote/launch.ts";
import { parseSource } from "../source/spec.ts";
import { SshConnection } from "../ssh/connect.ts";
import { Chain } from "../store/chain.ts";
import { RunLock } from "../store/run_lock.ts";
import { forgetBaselines } from "../tracking/thin_tracking.ts";
import { expectPositionals, type ParsedArgs } from "./args.ts";
import { type Command, HELP_OPTION } from "./command.ts";
import { note, printOut } from "./output.ts";
import { SSH_HELP, SSH_OPTIONS, sshFromArgs } from "./ssh_options.ts";

const USAGE = "blockdiff forget-baseline NAME [SSH options]";

export const forgetBaselineCommand: Command = {
  name: "forget-baseline",
  summary: "remove the thin snapshot chain NAME keeps for change tracking (its next backup reads everything)",
  help: `usage: ${USAGE}

A backup of a thin LV (--lvm-snapshot) keeps its snapshot as the chain's baseline, so the next run reads only
what changed since. A kept snapshot takes pool space as the volume changes. This removes the chain's
baselines on the host that holds the volume (as recorded in the chain's last manifest: locally, or over
SSH); the chain itself is not changed, and its next backup reads the whole volume and keeps a new baseline.

options:
${SSH_HELP}
  -h, --help            this help

example:
  blockdiff forget-baseline /backup/db`,
  options: [HELP_OPTION, ...SSH_OPTIONS],
  async run(args) {
    const [name] = expectPositionals(args, 1, 1, USAGE);
    const chain = new Chain(name);
    const lock = RunLock.acquire(chain.lockPath, `chain ${chain.path("")}`, "forget-baseline");
    try {
      const m = chain.readManifest(chain.requireVersion());
      if (!m?.baseline || !m.chainId) {
        note(`chain ${chain.path("")} keeps no baseline (its last generation recorded none)`);
        return 0;
      }
      const gone = await forget(m.source, { vg: m.baseline.vg, chainId: m.chainId }, args);
      for (const g of gone) printOut(`removed ${g}\n`);
      note(
        `chain ${chain.path("")}: ${
          gone.length ? `removed ${gone.length} baseline(s)` : "no baseline was left"
        }`,
      );
      return 0;
    } finally {
      lock.release();
    }
  },
};

/** On the host of `source` (a SOURCE as the manifest records it): locally, or through the agent. */
async function forget(
  source: string,
  r: { vg: string; chainId: string },
  args: ParsedArgs,
): Promise<string[]> {
  const spec = parseSource(source);
  if (spec.kind === "local") return forgetBaselines(r.vg, r.chainId);
  const conn = await SshConnection.connect({
    ...sshFromArgs(args),
    host: spec.host,
    port: spec.port,
    user: spec.user,
  });
  try {
    const agent = await startAgent({ conn, args: encodeForgetArgs(r), log: () => {}, verifyFirst: true });
    agent.channel.end();
    let out = "";
    for await (const chunk of agent.output) out += new TextDecoder().decode(chunk);
    const exit = await agent.closed;
    if (exit.code !== 0) {
      throw new BlockdiffError(
        `agent on ${conn.target} failed: ${lastLine(agent.stderr()) || `exit ${exit.code}`}`,
      );
    }
    return out.split("\n").filter(Boolean);
  } finally {
    conn.close();
  }
}
