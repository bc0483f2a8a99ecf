import { createParallelism } from "../engine/parallel.ts";
import { formatBytes, formatDuration } from "../display/units.ts";
import { UsageError } from "../errors.ts";
import { isS3Location } from "../s3/location.ts";
import { RunLog } from "../log/run_log.ts";
import type { RetentionPolicy } from "../pruner/policy.ts";
import { planPrune, type PrunePlan, runPrune } from "../pruner/prune.ts";
import { describeMembers, readChainView } from "../store/generations.ts";
import {
  openChainArg,
  openChainArgForWrite,
  refuseEndpointFor,
  S3_ENDPOINT_OPTION,
  S3_HELP,
} from "./chain_location.ts";
import { expectPositionals, type ParsedArgs, stringOpt } from "./args.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { logOutcome } from "./log_outcome.ts";
import { note, printJson, printTable } from "./output.ts";
import { policyFromArgs, RETENTION_HELP, RETENTION_OPTIONS } from "./retention_options.ts";
import { METRICS_HELP, METRICS_OPTION, monitorOptions } from "./metrics_option.ts";
import type { Chain } from "../store/chain.ts";
import { monitoredRun, type RunReport } from "../monitor/monitored_run.ts";

const USAGE =
  "blockdiff prune NAME|s3://BUCKET/[PREFIX/]NAME --keep-RULE N... [--dry-run] [--json] [--log FILE] [--metrics FILE]";

export const pruneCommand: Command = {
  name: "prune",
  summary: "remove generations of chain NAME by a retention policy, folding their blocks forward",
  help: `usage: ${USAGE}

Keeps the generations the --keep-* rules select (any rule keeping one keeps it; the newest generation is
always kept) and removes the others: the blocks of a removed generation are merged into the diff of the
next kept one, so every kept generation restores exactly as before, and a removed first generation makes
the next kept one the chain's full. Generation numbers do not change (a chain may start past 1); restore
and verify of a removed generation say where its blocks went. Times are the manifests' finish times
(chains of the original tools: the digest files' modification times). The new diffs use the compression
of the chain's newest generation. Killed at any point, the chain stays restorable and the next prune or
backup finishes the interrupted step. It holds the chain's lock, like backup. A pruned chain needs
blockdiff to restore (the original tools start at generation 1); 'blockdiff merge' of the remaining diffs
in order still rebuilds the newest generation. A chain in S3 is pruned the same way: the new diff is
uploaded, the kept generation's manifest replaced, then the objects nothing names are deleted (one prune
of a chain at a time; a restore or verify reading it meanwhile may fail and can be run again).

options:
${RETENTION_HELP}
  --dry-run             show what would be kept and removed, and why; change nothing
  --json                print the plan and the result as JSON on stdout
  --log FILE            append timestamped lines about the run to FILE
${METRICS_HELP}
${S3_HELP}
  -h, --help            this help

examples:
  blockdiff prune /backup/db --keep-daily 7 --keep-weekly 4 --keep-monthly 6 --dry-run
  blockdiff prune /backup/db --keep-last 30 --log /backup/db.log`,
  options: [
    HELP_OPTION,
    JSON_OPTION,
    ...RETENTION_OPTIONS,
    { name: "dry-run", kind: "flag" },
    { name: "log", kind: "value" },
    METRICS_OPTION,
    S3_ENDPOINT_OPTION,
  ],
  async run(args) {
    const log = new RunLog(stringOpt(args, "log") ?? null);
    const monitor = monitorOptions(args, "prune", { record: !args.opts.has("dry-run") });
    return await monitoredRun(
      monitor,
      (runReport) =>
        logOutcome(log, `prune ${args.positionals[0] ?? ""}`.trim(), () => prune(args, log, runReport), {
          interrupted: () => "the generations pruned before the signal stay pruned; the rest are untouched",
        }),
    );
  },
};

async function prune(args: ParsedArgs, log: RunLog, runReport: RunReport): Promise<number> {
  const [name] = expectPositionals(args, 1, 1, USAGE);
  const policy = requirePolicy(args);
  const json = args.opts.has("json");
  if (args.opts.has("dry-run")) {
    const chain = await openChainArg(name, args);
    const plan = planPrune(chain, readChainView(chain), policy);
    report({ chain, plan, json, dryRun: true, bytesFreed: null, elapsedMs: 0 });
    return 0;
  }
  if (!isS3Location(name)) refuseEndpointFor(name, args);
  const writer = await openChainArgForWrite(name, args, { command: "prune", log: (l) => log.info(l) });
  const { chain } = writer;
  const par = createParallelism(undefined, { readsAndWrites: true });
  try {
    runReport.locked();
    runReport.generation = writer.version; // the chain's newest, for --metrics (also of a chain in S3)
    const result = await pruneLocked({ chain, policy, log, par });
    report({ chain, json, dryRun: false, ...result });
    return 0;
  } finally {
    await par.close();
    writer.lock.release();
  }
}

/** The `--keep-*` policy; none given is an error, not "remove everything". */
export function requirePolicy(args: ParsedArgs): RetentionPolicy {
  const policy = policyFromArgs(args);
  if (!policy) {
    throw new UsageError(
      "prune needs at least one --keep-* rule (to keep only the newest generation: --keep-last 1)",
    );
  }
  return policy;
}

/** Plans and carries out a prune of a chain whose lock the caller holds; logs the outcome. */
export async function pruneLocked(o: {
  chain: Chain;
  policy: RetentionPolicy;
  log: RunLog;
  par: ReturnType<typeof createParallelism>;
}): Promise<{ plan: PrunePlan; bytesFreed: number; elapsedMs: number }> {
  const started = Date.now();
  const plan = planPrune(o.chain, readChainView(o.chain), o.policy);
  const r = await runPrune({ chain: o.chain, policy: o.policy, par: o.par, log: (l) => o.log.info(l) }, plan);
  const elapsedMs = Date.now() - started;
  o.log.info(`prune ${o.chain.name}: ${pruneSummary(o.chain, plan, r.bytesFreed, elapsedMs)}`);
  return { plan, bytesFreed: r.bytesFreed, elapsedMs };
}

export function pruneSummary(
  chain: Chain,
  plan: PrunePlan,
  bytesFreed: number | null,
  elapsedMs: number,
): string {
  const kept = plan.decisions.filter((d) => d.keep).map((d) => d.generation).sort((a, b) => a - b);
  const removed = plan.decisions.length - kept.length;
  const would = bytesFreed === null ? "would remove" : "removed";
  return `${would} ${removed} of ${plan.decisions.length} generations of ${chain.name}, ` +
    `kept ${describeMembers(kept)}` +
    (bytesFreed === null ? "" : `; ${formatBytes(bytesFreed)} freed in ${formatDuration(elapsedMs)}`);
}

/** The plan and the result as JSON (`--json`). */
export function pruneJson(
  o: { plan: PrunePlan; dryRun: boolean; bytesFreed: number | null; elapsedMs: number },
) {
  const into = new Map(o.plan.folds.flatMap((f) => f.removes.map((r) => [r, f.into] as const)));
  return {
    ok: true,
    dryRun: o.dryRun,
    generations: o.plan.decisions.map((d) => ({
      generation: d.generation,
      finishedAt: d.time.toISOString(),
      keep: d.keep,
      reasons: d.reasons,
      foldedInto: into.get(d.generation) ?? null,
    })),
    bytesFreed: o.bytesFreed,
    elapsedMs: o.elapsedMs,
  };
}

/** One line per generation (newest first) on stdout, or JSON; and the summary line. */
function report(o: {
  chain: Chain;
  plan: PrunePlan;
  json: boolean;
  dryRun: boolean;
  bytesFreed: number | null;
  elapsedMs: number;
}): void {
  if (o.json) printJson(pruneJson(o));
  else {
    const into = new Map(o.plan.folds.flatMap((f) => f.removes.map((r) => [r, f.into] as const)));
    const rows = [["GEN", "FINISHED", "ACTION", "REASON"]];
    for (const d of o.plan.decisions) {
      rows.push([
        String(d.generation),
        d.time.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z"),
        d.keep ? "keep" : `${o.dryRun ? "would fold" : "folded"} into ${into.get(d.generation)}`,
        d.reasons.join(", "),
      ]);
    }
    printTable(rows);
  }
  note(
    `prune ${o.chain.name}: ${pruneSummary(o.chain, o.plan, o.dryRun ? null : o.bytesFreed, o.elapsedMs)}`,
  );
}
