import { verifyChain } from "../checker/verify.ts";
import { createParallelism } from "../engine/parallel.ts";
import { EXIT } from "../errors.ts";
import { Chain } from "../store/chain.ts";
import { expectPositionals, intOpt } from "./args.ts";
import { type Command, GENERATION_OPTION, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { note, printJson, printOut } from "./output.ts";

export const verifyCommand: Command = {
  name: "verify",
  summary: "check every generation of chain NAME without restoring it",
  help: `usage: blockdiff verify NAME [--generation K]

Checks the chain's generations up to K (default: all) without writing anything: every diff parses; every
block in diff k hashes to generation k's digest; every block diff k lacks is unchanged since the chain's
generation before k (k-1, unless a prune removed it); manifests (NAME.k.json) match the files, SHA-256 sums
included. Prints one line per generation. Exit 0 when all are good, 3 when any is not.

options:
  -g, --generation K    check the generations up to K only
  --json                print the results as JSON on stdout
  -h, --help            this help

example:
  blockdiff verify /backup/db`,
  options: [HELP_OPTION, JSON_OPTION, GENERATION_OPTION],
  async run(args) {
    const [name] = expectPositionals(args, 1, 1, "blockdiff verify NAME [--generation K]");
    const json = args.opts.has("json");
    const par = createParallelism(undefined, { readsAndWrites: true });
    const results = await verifyChain({
      chain: new Chain(name),
      upTo: intOpt(args, "generation"),
      hasher: par.hasher,
      onResult: (r) => {
        if (!json) printOut(`generation ${r.generation}: ${r.ok ? "OK" : "BAD"} ${r.detail}\n`);
      },
    }).finally(() => par.close());
    const bad = results.filter((r) => !r.ok);
    if (json) printJson({ ok: bad.length === 0, generations: results });
    if (bad.length) {
      note(
        `${name}: ${bad.length} of ${results.length} generations failed verification (first: ${
          bad[0].generation
        })`,
      );
      return EXIT.integrity;
    }
    return 0;
  },
};
