import { verifyChain } from "../checker/verify.ts";
import { createParallelism } from "../engine/parallel.ts";
import { EXIT } from "../errors.ts";
import { expectPositionals, intOpt } from "./args.ts";
import { type Command, GENERATION_OPTION, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { note, printJson, printOut } from "./output.ts";
import { METRICS_HELP, METRICS_OPTION, monitorOptions } from "./metrics_option.ts";
import { monitoredRun, type RunReport } from "../monitor/monitored_run.ts";
import type { ParsedArgs } from "./args.ts";
import { openChainArg, S3_ENDPOINT_OPTION, S3_HELP } from "./chain_location.ts";

const USAGE = "blockdiff verify NAME|s3://BUCKET/[PREFIX/]NAME [--generation K] [--json] [--metrics FILE]";

export const verifyCommand: Command = {
  name: "verify",
  summary: "check every generation of chain NAME without restoring it",
  help: `usage: ${USAGE}

Checks the chain's generations up to K (default: all) without changing the chain: every diff parses; every
block in diff k hashes to generation k's digest; every block diff k lacks is unchanged since the chain's
generation before k (k-1, unless a prune removed it); manifests (NAME.k.json) match the files, SHA-256 sums
included. Prints one line per generation. Exit 0 when all are good, 3 when any is not. The outcome is
recorded in NAME.last-verify.json for 'blockdiff status' (where it can be written).

options:
  -g, --generation K    check the generations up to K only
  --json                print the results as JSON on stdout
${METRICS_HELP}
${S3_HELP}
  -h, --help            this help

example:
  blockdiff verify /backup/db`,
  options: [HELP_OPTION, JSON_OPTION, GENERATION_OPTION, METRICS_OPTION, S3_ENDPOINT_OPTION],
  run(args) {
    return monitoredRun(monitorOptions(args, "verify"), (report) => verify(args, report));
  },
};

async function verify(args: ParsedArgs, report: RunReport): Promise<number> {
  const [name] = expectPositionals(args, 1, 1, USAGE);
  const json = args.opts.has("json");
  // the bucket's digests, not the local copy's: verify checks what is stored there
  const chain = await openChainArg(name, args, { refetchDigests: true });
  report.generation = chain.readVersion(); // the chain's newest, for --metrics (also of a chain in S3)
  const par = createParallelism(undefined, { readsAndWrites: true });
  const results = await verifyChain({
    chain,
    upTo: intOpt(args, "generation"),
    hasher: par.hasher,
    onResult: (r) => {
      if (!json) printOut(`generation ${r.generation}: ${r.ok ? "OK" : "BAD"} ${r.detail}\n`);
    },
  }).finally(() => par.close());
  const bad = results.filter((r) => !r.ok);
  if (json) printJson({ ok: bad.length === 0, generations: results });
  if (bad.length) {
    report.failure = `${name}: ${bad.length} of ${results.length} generations failed verification (first: ${
      bad[0].generation
    })`;
    note(report.failure);
    return EXIT.integrity;
  }
  return 0;
}
