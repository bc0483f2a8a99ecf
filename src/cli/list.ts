import { formatBytes } from "../display/units.ts";
import { Chain } from "../store/chain.ts";
import { type ChainInfo, describeChain, findChains, isDirectory } from "../store/describe.ts";
import { expectPositionals } from "./args.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { printJson, printOut, printTable } from "./output.ts";

export const listCommand: Command = {
  name: "list",
  summary: "show the generations of chain NAME, or the chains in DIR",
  help: `usage: blockdiff list NAME|DIR [--json]

NAME: one line per complete generation: number, date, source size, changed blocks (ratio), diff file and
its size. DIR: one line per chain (every NAME.ver in DIR).

options:
  --json        print the same as JSON on stdout
  -h, --help    this help

examples:
  blockdiff list /backup/db
  blockdiff list /backup`,
  options: [HELP_OPTION, JSON_OPTION],
  run(args) {
    const [target] = expectPositionals(args, 1, 1, "blockdiff list NAME|DIR");
    const json = args.opts.has("json");
    if (isDirectory(target)) {
      const chains = findChains(target).map(describeChain);
      if (json) printJson(chains);
      else if (chains.length === 0) printOut(`no backup chains in ${target}\n`);
      else printChains(chains);
    } else {
      const info = describeChain(new Chain(target));
      if (json) printJson(info);
      else printGenerations(info);
    }
    return Promise.resolve(0);
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
