/** What every subcommand provides; main.ts dispatches on `name`. */
import type { OptionSpec, ParsedArgs } from "./args.ts";

export interface Command {
  name: string;
  summary: string;
  /** Full `--help` text. */
  help: string;
  options: OptionSpec[];
  run(args: ParsedArgs): Promise<number>;
}

export const HELP_OPTION: OptionSpec = { name: "help", short: "h", kind: "flag" };
export const JSON_OPTION: OptionSpec = { name: "json", kind: "flag" };
export const GENERATION_OPTION: OptionSpec = { name: "generation", short: "g", kind: "value" };
