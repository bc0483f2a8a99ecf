import * as path from "node:path";
import { applyRepair, planRepair, repairNeeded, type RepairPlan } from "../checker/repair.ts";
import { createParallelism } from "../engine/parallel.ts";
import { EXIT } from "../errors.ts";
import { RunLog } from "../log/run_log.ts";
import { Chain } from "../store/chain.ts";
import { endCommit, recoverCommit } from "../store/journal.ts";
import { describeMembers } from "../store/generations.ts";
import { RunLock } from "../store/run_lock.ts";
import { expectPositionals, stringOpt } from "./args.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { logOutcome } from "./log_outcome.ts";
import { note, printJson, printOut } from "./output.ts";
import { IntegrityError } from "../errors.ts";

const USAGE = "blockdiff repair NAME [--dry-run] [--json] [--log FILE]";

export const repairCommand: Command = {
  name: "repair",
  summary: "set NAME.ver to the newest generation whose chain verifies (after a lost or wrong .ver)",
  help: `usage: ${USAGE}

When NAME.ver is missing, or disagrees with the generations on disk, commands that write refuse (exit 3).
repair checks generations 1, 2, ... in order as 'blockdiff verify' does, sets NAME.ver to the newest
generation K whose whole chain up to K verifies, and moves the files of every later generation (the first bad
one and those after it) into NAME.repair-TIME beside the chain: nothing is deleted. Temporary files of dead
runs are removed. It holds the chain's lock, like backup. An I/O error stops it before anything changes.
Exit 0 when the chain is consistent afterwards, 3 when no generation verifies (everything moved aside: the
next backup starts a new chain).

options:
  --dry-run     check and say what it would do, change nothing
  --json        print the result as JSON on stdout
  --log FILE    append timestamped lines about the run to FILE
  -h, --help    this help

example:
  blockdiff repair /backup/db --dry-run && blockdiff repair /backup/db`,
  options: [HELP_OPTION, JSON_OPTION, { name: "dry-run", kind: "flag" }, { name: "log", kind: "value" }],
  async run(args) {
    const log = new RunLog(stringOpt(args, "log") ?? null);
    return await logOutcome(log, `repair ${args.positionals[0] ?? ""}`.trim(), () => repair(args, log));
  },
};

async function repair(args: Parameters<Command["run"]>[0], log: RunLog): Promise<number> {
  const [name] = expectPositionals(args, 1, 1, USAGE);
  const chain = new Chain(name);
  const dryRun = args.opts.has("dry-run"), json = args.opts.has("json");
  const lock = dryRun ? null : RunLock.acquire(chain.lockPath, `chain ${chain.path("")}`, "repair");
  const par = createParallelism(undefined, { readsAndWrites: true });
  try {
    if (lock) {
      try {
        const recovered = recoverCommit(chain);
        if (recovered) log.info(`${chain.name}: ${recovered}`);
      } catch (err) {
        if (!(err instanceof IntegrityError)) throw err;
        endCommit(chain); // a journal that disagrees with .ver: what verifies decides below
      }
    }
    const plan = await planRepair(chain, par.hasher, (c) => {
      if (!json) printOut(`generation ${c.generation}: ${c.ok ? "OK" : "BAD"} ${c.detail}\n`);
    });
    const needed = repairNeeded(plan);
    const aside = needed && !dryRun ? applyRepair(chain, plan) : null;
    const summary = describe(chain, plan, { dryRun, needed, aside });
    if (!dryRun) log.info(`repair ${chain.name}: ${summary}`);
    if (json) {
      printJson({
        ok: plan.good > 0,
        dryRun,
        versionBefore: typeof plan.version === "object" && plan.version !== null ? null : plan.version,
        versionAfter: plan.good,
        generations: plan.checks,
        moved: plan.moveAside.map((f) => path.basename(f)),
        movedTo: aside,
      });
    }
    note(`repair ${chain.name}: ${summary}`);
    return plan.good > 0 || !needed ? 0 : EXIT.integrity;
  } finally {
    await par.close();
    lock?.release();
  }
}

function describe(
  chain: Chain,
  p: RepairPlan,
  o: { dryRun: boolean; needed: boolean; aside: string | null },
): string {
  const ver = `${chain.name}.ver`;
  const verified = describeMembers(p.checks.filter((c) => c.ok).map((c) => c.generation));
  const now = p.version === null
    ? `${ver} is missing`
    : typeof p.version === "object"
    ? `${ver} is unreadable`
    : `${ver} says ${p.version}`;
  if (!o.needed) {
    return p.good > 0
      ? `nothing to repair: ${ver} says ${p.good} and generations ${verified} verify`
      : `nothing to repair: no generations`;
  }
  const would = o.dryRun ? "would " : "";
  const parts: string[] = [];
  parts.push(
    p.good > 0
      ? `${now}; ${would}set it to ${p.good} (generations ${verified} verify)`
      : `${now}; no generation verifies, ${would}move ${ver} aside (the next backup starts a new chain)`,
  );
  if (p.moveAside.length) {
    const gens = p.moveAside.length;
    parts.push(
      `${would}move ${gens} file${gens === 1 ? "" : "s"} of later generations to ${
        o.aside ?? `${chain.path("")}.repair-TIME`
      }`,
    );
  }
  if (p.temps.length) parts.push(`${would}remove ${p.temps.length} temporary file(s) of dead runs`);
  return parts.join("; ");
}
