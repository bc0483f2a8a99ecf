/** A small command-line parser: long/short options, `--opt=value`, optional values, `--` ends options. */
import { UsageError } from "../errors.ts";

export interface OptionSpec {
  /** Long name without dashes; the key in the result. */
  name: string;
  short?: string;
  aliases?: string[];
  /** flag: no value; value: needs one; optional: `--name` or `--name=value`. */
  kind: "flag" | "value" | "optional";
}

export interface ParsedArgs {
  opts: Map<string, string | true>;
  positionals: string[];
  /** Everything after `--`. */
  rest: string[];
}

export function parseArgs(argv: string[], specs: OptionSpec[], command: string): ParsedArgs {
  const byLong = new Map<string, OptionSpec>();
  const byShort = new Map<string, OptionSpec>();
  for (const s of specs) {
    byLong.set(s.name, s);
    for (const a of s.aliases ?? []) byLong.set(a, s);
    if (s.short) byShort.set(s.short, s);
  }
  const opts = new Map<string, string | true>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") return { opts, positionals, rest: argv.slice(i + 1) };
    let spec: OptionSpec | undefined;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      const key = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
      spec = byLong.get(key);
      if (!spec) {
        throw new UsageError(`${command}: unknown option --${key} (see blockdiff ${command} --help)`);
      }
    } else if (arg.startsWith("-") && arg.length > 1) {
      spec = byShort.get(arg.slice(1, 2));
      if (!spec) throw new UsageError(`${command}: unknown option ${arg} (see blockdiff ${command} --help)`);
      if (arg.length > 2) inline = arg.slice(2);
    } else {
      positionals.push(arg);
      continue;
    }
    const shown = `--${spec.name}`;
    if (spec.kind === "flag") {
      if (inline !== undefined) throw new UsageError(`${command}: ${shown} takes no value`);
      opts.set(spec.name, true);
    } else if (spec.kind === "optional") {
      opts.set(spec.name, inline ?? true);
    } else {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`${command}: ${shown} needs a value`);
      opts.set(spec.name, value);
    }
  }
  return { opts, positionals, rest: [] };
}

export function stringOpt(p: ParsedArgs, name: string): string | undefined {
  const v = p.opts.get(name);
  return v === true ? undefined : v;
}

export function intOpt(p: ParsedArgs, name: string, min = 1): number | undefined {
  const v = stringOpt(p, name);
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || !Number.isSafeInteger(Number(v))) {
    throw new UsageError(`--${name} must be a whole number >= ${min}, not '${v}'`);
  }
  return Number(v);
}

export function expectPositionals(p: ParsedArgs, min: number, max: number, usage: string): string[] {
  if (p.positionals.length < min || p.positionals.length > max) throw new UsageError(`usage: ${usage}`);
  return p.positionals;
}
