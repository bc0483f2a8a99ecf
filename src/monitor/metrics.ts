/**
 * `--metrics FILE`: the run's outcome as a Prometheus text file for node_exporter's textfile collector,
 * written when the run ends, whatever ends it, and replaced whole (atomic_file.ts; mode 0644, the collector
 * runs as another user). Each run replaces the file: give each chain and command its own file
 * (`/var/lib/node_exporter/textfile/blockdiff-db.prom`); the collector reads every `*.prom` there.
 */
import * as path from "node:path";
import type { Chain } from "../store/chain.ts";
import { writeFileAtomic } from "./atomic_file.ts";
import type { MonitoredCommand } from "./last_run.ts";

/** What a run found or did; what is unknown (a failed run's bytes) is left out. */
export interface RunFacts {
  bytesRead?: number;
  bytesWritten?: number;
  blocksChanged?: number;
  /** The chain's newest generation at the end of the run. */
  generation?: number;
}

export interface RunMetrics {
  chain: Chain;
  command: MonitoredCommand;
  startedAt: Date;
  finishedAt: Date;
  exitCode: number;
  lastSuccessAt: Date | null;
  facts: RunFacts;
}

const METRICS: { name: string; help: string; value: (m: RunMetrics) => number | undefined }[] = [
  {
    name: "blockdiff_last_run_timestamp_seconds",
    help: "When the last run of the command on the chain ended (Unix time).",
    value: (m) => m.finishedAt.getTime() / 1000,
  },
  {
    name: "blockdiff_last_success_timestamp_seconds",
    help: "When a run of the command on the chain last succeeded (Unix time; 0: never).",
    value: (m) => (m.lastSuccessAt?.getTime() ?? 0) / 1000,
  },
  {
    name: "blockdiff_last_run_duration_seconds",
    help: "How long the last run took.",
    value: (m) => (m.finishedAt.getTime() - m.startedAt.getTime()) / 1000,
  },
  {
    name: "blockdiff_last_run_exit_code",
    help: "The last run's exit status (0: success; see blockdiff --help).",
    value: (m) => m.exitCode,
  },
  {
    name: "blockdiff_last_run_read_bytes",
    help: "Bytes of the source the last run read.",
    value: (m) => m.facts.bytesRead,
  },
  {
    name: "blockdiff_last_run_written_bytes",
    help: "Bytes the last run wrote into the chain (the new diff file).",
    value: (m) => m.facts.bytesWritten,
  },
  {
    name: "blockdiff_last_run_changed_blocks",
    help: "Blocks whose MD5 changed since the previous generation, in the last run's generation.",
    value: (m) => m.facts.blocksChanged,
  },
  {
    name: "blockdiff_newest_generation",
    help: "The chain's newest complete generation (0: none).",
    value: (m) => m.facts.generation,
  },
];

/** The text file: # HELP and # TYPE (gauge) for each metric, one sample with chain, dir and command. */
export function formatMetrics(m: RunMetrics): string {
  // a chain in a bucket is where it is: s3://BUCKET/PREFIX
  const dir = m.chain.dir.startsWith("s3:/")
    ? m.chain.dir.replace(/^s3:\/+/, "s3://")
    : path.resolve(m.chain.dir);
  const labels = `{chain="${escapeLabel(m.chain.name)}",dir="${escapeLabel(dir)}",` +
    `command="${m.command}"}`;
  let text = "";
  for (const metric of METRICS) {
    const v = metric.value(m);
    if (v === undefined) continue;
    text +=
      `# HELP ${metric.name} ${metric.help}\n# TYPE ${metric.name} gauge\n${metric.name}${labels} ${v}\n`;
  }
  return text;
}

export function writeMetrics(file: string, m: RunMetrics): void {
  writeFileAtomic(file, formatMetrics(m), 0o644);
}

/** A label value in the exposition format: backslash, double quote and line feed escaped. */
function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}
