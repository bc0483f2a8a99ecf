/** `--metrics FILE` of backup, prune and verify, and what their runs record for `status` (monitored_run.ts). */
import { type ParsedArgs, stringOpt } from "./args.ts";
import { note } from "./output.ts";
import type { OptionSpec } from "./args.ts";
import type { MonitoredCommand } from "../monitor/last_run.ts";
import type { MonitorOptions } from "../monitor/monitored_run.ts";

export const METRICS_OPTION: OptionSpec = { name: "metrics", kind: "value" };

export const METRICS_HELP =
  `  --metrics FILE        when the run ends, however it ends, replace FILE (0644) with its outcome in
                        Prometheus text format, for node_exporter's textfile collector: one file per
                        chain and command, e.g. /var/lib/node_exporter/textfile/blockdiff-db.prom`;

/** The chain the command line names (its first argument) and `--metrics`. */
export function monitorOptions(
  args: ParsedArgs,
  command: MonitoredCommand,
  o: { record?: boolean } = {},
): MonitorOptions {
  return {
    command,
    chainSpec: args.positionals[0],
    record: o.record ?? true,
    metricsFile: stringOpt(args, "metrics"),
    warn: note,
  };
}
