/** The `--keep-*` options of `prune` and of `backup --prune`, and the policy they make (pruner/policy.ts). */
import { UsageError } from "../errors.ts";
import { emptyPolicy, parseDuration, type RetentionPolicy, RULES } from "../pruner/policy.ts";
import { type OptionSpec, type ParsedArgs, stringOpt } from "./args.ts";

export const RETENTION_OPTIONS: OptionSpec[] = [
  ...RULES.map((r): OptionSpec => ({ name: `keep-${r}`, kind: "value" })),
  { name: "keep-within", kind: "value" },
];

export const RETENTION_HELP = `  --keep-last N         keep the N newest generations
  --keep-hourly N       keep the newest generation of each of the last N hours that have one
  --keep-daily N        ... of each of the last N days (local time; env TZ)
  --keep-weekly N       ... of each of the last N ISO weeks (Monday to Sunday)
  --keep-monthly N      ... of each of the last N months
  --keep-yearly N       ... of each of the last N years
                        (N = unlimited or -1: every such period; a rule with counts left also keeps
                        the oldest generation)
  --keep-within D       keep every generation finished within D of the newest (D: 1y2m3d4h, any part)`;

/** The policy the `--keep-*` options give; null when none was given. */
export function policyFromArgs(args: ParsedArgs): RetentionPolicy | null {
  const count = (rule: string) => {
    const v = stringOpt(args, `keep-${rule}`);
    if (v === undefined) return 0;
    if (v === "unlimited" || v === "-1") return -1;
    if (!/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) {
      throw new UsageError(`--keep-${rule} must be a whole number >= 0 or unlimited, not '${v}'`);
    }
    return Number(v);
  };
  const within = stringOpt(args, "keep-within");
  const policy: RetentionPolicy = {
    last: count("last"),
    hourly: count("hourly"),
    daily: count("daily"),
    weekly: count("weekly"),
    monthly: count("monthly"),
    yearly: count("yearly"),
    within: within === undefined ? null : parseDuration(within),
  };
  return emptyPolicy(policy) ? null : policy;
}
