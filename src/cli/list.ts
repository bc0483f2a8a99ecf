import { formatBytes } from "../display/units.ts";
import { Chain } from "../store/chain.ts";
import { monthsOf } from "../store/monthly.ts";
import { type ChainInfo, describeChain, findChains, isDirectory } from "../store/describe.ts";
import { expectPositionals } from "./args.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { printJson, printOut, printTable } from "./output.ts";
import { isS3Location } from "../s3/location.ts";
import { openChainArg, S3_ENDPOINT_OPTION, S3_HELP } from "./chain_location.ts";

const USAGE = "blockdiff list NAME|DIR|s3://BUCKET/[PREFIX/]NAME [--monthly] [--json]";

export const listCommand: Command = {
  name: "list",
  summary: "show the generations of chain NAME, or the chains in DIR",
  help: `usage: ${USAGE}

NAME: one line per complete generation: number, date, source size, changed blocks (ratio), diff file and
its size. DIR: one line per chain (every NAME.ver in DIR). NAME of chains taken with backup --monthly
(NAME-YYYYMM), when there is no chain NAME itself or with --monthly: one line per month's chain.

options:
  --monthly     NAME is the base name of monthly chains NAME-YYYYMM
  --json        print the same as JSON on stdout
${S3_HELP}
  -h, --help    this help

examples:
  blockdiff list /backup/db
  blockdiff list /backup/db-202611
  blockdiff list /backup`,
  options: [HELP_OPTION, JSON_OPTION, { name: "monthly", kind: "flag" }, S3_ENDPOINT_OPTION],
  async run(args) {
    const [target] = expectPositionals(args, 1, 1, USAGE);
    const json = args.opts.has("json");
    if (isS3Location(target) || args.opts.has("s3-endpoint")) {
      const info = describeChain(await openChainArg(target, args));
      if (json) printJson(info);
      else printGenerations(info);
      return 0;
    }
    const months = isDirectory(target)
      ? []
      : monthsOf(new Chain(target), { monthly: args.opts.has("monthly") });
    if (months.length) {
      const chains = months.map(describeChain);
      if (json) printJson(chains);
      else {
        printChains(chains);
        printOut(
          `monthly chains of ${target}: 'blockdiff list ${months.at(-1)!.path("")}' shows the newest\n`,
        );
      }
    } else if (isDirectory(target)) {
      const chains = findChains(target).map(describeChain);
      if (json) printJson(chains);
      else if (chains.length === 0) printOut(`no backup chains in ${target}\n`);
      else printChains(chains);
    } else {
      const info = describeChain(new Chain(target));
      if (json) printJson(info);
      else printGenerations(info);
    }
    return 0;
  },
};

function printGenerations(c: ChainInfo): void {
  const rows = [["GEN", "DATE", "SOURCE SIZE", "CHANGED", "DIFF FILE", "DIFF SIZE"]];
  for (const g of c.generations) {
    const changed = g.blocksChanged === null
      ? "?"
      : `${g.blocksChanged}/${g.blocks} (${
        g.blocks ? ((g.blocksChanged / g.blocks) * 100).toFixed(1) : "0.0"
      }%)`;
    rows.push([
      String(g.generation),
      g.date.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      g.sourceSize === null ? "?" : formatBytes(g.sourceSize),
      changed,
      g.diffFile,
      formatBytes(g.diffBytes),
    ]);
  }
  printTable(rows);
  printOut(`${c.generations.length} generations, ${formatBytes(c.totalBytes)} in diffs\n`);
}

function printChains(chains: ChainInfo[]): void {
  const rows = [["CHAIN", "GENERATIONS", "LAST BACKUP", "DIFF BYTES"]];
  for (const c of chains) {
    const last = c.generations.at(-1);
    rows.push([
      c.name,
      String(c.generations.length),
      last ? last.date.replace("T", " ").replace(/\.\d+Z$/, "Z") : "-",
      formatBytes(c.totalBytes),
    ]);
  }
  printTable(rows);
}
