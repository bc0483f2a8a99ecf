import { BlockdiffError, EXIT } from "../errors.ts";
import { chainsIn, type ChainStatus, chainStatus, statusLine } from "../monitor/chain_status.ts";
import { parseAge } from "../monitor/duration.ts";
import { isDirectory } from "../store/describe.ts";
import { expectPositionals, stringOpt } from "./args.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { printJson, printOut } from "./output.ts";
import { isS3Location } from "../s3/location.ts";
import { openChainArg, S3_ENDPOINT_OPTION, S3_HELP } from "./chain_location.ts";

const USAGE =
  "blockdiff status NAME|DIR|s3://BUCKET/[PREFIX/]NAME [--max-age AGE] [--max-verify-age AGE] [--json]";

export const statusCommand: Command = {
  name: "status",
  summary: "for monitoring: check that chain NAME (or each in DIR) is fresh and its last runs succeeded",
  help: `usage: ${USAGE}

For monitoring (cron, systemd, Nagios-style checks): one line per chain with its status, its newest
generation and that generation's age, the outcome of its last backup, prune and verify and when, and its
last successful verify. Exit 0 when every chain is fine, 5 when any chain
  - has no generation newer than --max-age (default 26h, for a daily backup),
  - had a last backup, prune or verify that failed or was interrupted (exit code and error line shown),
  - had a run that died: recorded as running, but its process is gone (SIGKILL, crash, power loss),
  - has no successful verify within --max-verify-age (only when given),
  - cannot be read (a broken NAME.ver).
The runs of an existing chain are recorded next to it (NAME.last-backup.json, NAME.last-prune.json,
NAME.last-verify.json): every verify, and every backup or prune that got the chain's lock (one refused
because another run holds it, exit 4, leaves that run's record). A run still going is not a problem.
NAME: one chain (DIR/NAME; the base name of --monthly chains means the newest month). DIR: every chain in
it (the newest month of --monthly chains); the worst chain decides the exit code. No such chain, or no
chain in DIR: exit 1. A chain in S3: its newest generation's age (its runs are not recorded there).

options:
  --max-age AGE         the newest generation may be this old (default 26h)
  --max-verify-age AGE  also fail when the last successful verify is older (or there was none)
  --json                print the status as JSON on stdout
${S3_HELP}
  -h, --help            this help
AGE: whole weeks, days, hours, minutes, seconds, as in 26h, 90m, 8d, 1w, 1d12h (m: minutes).

examples:
  blockdiff status /backup/db
  blockdiff status /backup --max-age 8d --max-verify-age 5w
  blockdiff status /backup/db --json`,
  options: [
    HELP_OPTION,
    JSON_OPTION,
    { name: "max-age", kind: "value" },
    { name: "max-verify-age", kind: "value" },
    S3_ENDPOINT_OPTION,
  ],
  async run(args) {
    const [target] = expectPositionals(args, 1, 1, USAGE);
    const maxVerify = stringOpt(args, "max-verify-age");
    const limits = {
      maxAge: parseAge(stringOpt(args, "max-age") ?? "26h", "--max-age"),
      maxVerifyAge: maxVerify === undefined ? null : parseAge(maxVerify, "--max-verify-age"),
      now: new Date(),
    };
    let chains: ChainStatus[];
    if (isDirectory(target)) {
      chains = chainsIn(target).map((c) => chainStatus(c, limits)).filter((s) => s !== null);
      if (!chains.length) throw new BlockdiffError(`no backup chains in ${target}`);
    } else {
      const remote = isS3Location(target) ? await openChainArg(target, args) : null;
      const local = chainStatus(remote ? remote.path("") : target, limits);
      // an S3 chain is read from its local copy: named as given
      const s = local && remote
        ? { ...local, chain: target, dir: target.slice(0, -remote.name.length - 1) }
        : local;
      if (!s) {
        throw new BlockdiffError(`no backup chain ${target} (no ${target}.ver and no record of a run)`);
      }
      chains = [s];
    }
    const code = chains.some((s) => s.problems.length) ? EXIT.unhealthy : EXIT.ok;
    if (args.opts.has("json")) {
      printJson({
        ok: code === EXIT.ok,
        exitCode: code,
        checkedAt: limits.now.toISOString(),
        maxAgeSeconds: limits.maxAge.seconds,
        maxVerifyAgeSeconds: limits.maxVerifyAge?.seconds ?? null,
        chains,
      });
    } else {
      for (const s of chains) printOut(statusLine(s, limits.now) + "\n");
    }
    return Promise.resolve(code);
  },
};
