import { createParallelism } from "../engine/parallel.ts";
import { UsageError } from "../errors.ts";
import { formatBytes, formatDuration, formatRate } from "../display/units.ts";
import { runRestore } from "../restorer/restore.ts";
import { isStdout } from "../restorer/target.ts";
import { expectPositionals, intOpt } from "./args.ts";
import { type Command, GENERATION_OPTION, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { note, printJson } from "./output.ts";
import { openChainArg, S3_ENDPOINT_OPTION, S3_HELP } from "./chain_location.ts";

const USAGE =
  "blockdiff restore NAME|s3://BUCKET/[PREFIX/]NAME TARGET|- [--generation K] [--monthly] [--force] [--no-sparse] [--json]";

export const restoreCommand: Command = {
  name: "restore",
  summary: "rebuild generation K of chain NAME into TARGET, verified against its digest",
  help: `usage: ${USAGE}

Rebuilds generation K (default: the last complete one) of chain NAME in one pass over the chain's
generations up to K (1..K, less those a prune removed): each block is read once, from the newest generation
holding it (found from the digests, so blocks later generations replaced are not read), checked against
generation K's digest, and written once. The image gets the recorded size; in a new file, blocks of zeros
are left as holes (a sparse file) unless --no-sparse is given. NAME of chains taken with backup --monthly:
the newest month's chain NAME-YYYYMM when there is no chain NAME (or with --monthly); name an older month
as NAME-YYYYMM.

TARGET   a new file: written as TARGET.tmp-PID and renamed to TARGET only when every block checked out
         an existing regular file: replaced the same way, only with --force
         -  (or /dev/stdout): the image on standard output, e.g. | ssh host dd of=/dev/sdb
         a FIFO or character device: written in order
         a block device: written in place (on a failure it holds a partial image; exit 3); refused when it
         or a partition of it is mounted, active swap, or holds another device (LVM, RAID)
         Never replaced: symbolic links, directories, and the chain's own files.

options:
  -g, --generation K    generation to restore (default: the last)
  --monthly             NAME is the base name of monthly chains: restore from the newest month
  -f, --force           replace TARGET if it is an existing regular file
  --no-sparse           write the zero blocks of a file too (allocate the whole image)
  --json                print a JSON summary on stdout (not with TARGET -)
${S3_HELP}
  -h, --help            this help

examples:
  blockdiff restore /backup/db /restore/db.img
  blockdiff restore /backup/db-202611 /dev/vg0/restore --generation 12
  blockdiff restore s3://offsite/hosts/db1/db /restore/db.img
  blockdiff restore /backup/db - | ssh root@db2 'dd of=/dev/vg0/mysql bs=1M'`,
  options: [
    HELP_OPTION,
    JSON_OPTION,
    GENERATION_OPTION,
    { name: "force", short: "f", kind: "flag" },
    {
      name: "no-sparse",
      kind: "flag",
    },
    { name: "monthly", kind: "flag" },
    S3_ENDPOINT_OPTION,
  ],
  async run(args) {
    const [name, target] = expectPositionals(args, 2, 2, USAGE);
    if (args.opts.has("json") && isStdout(target)) {
      throw new UsageError("restore: --json cannot go with TARGET - (standard output carries the image)");
    }
    const generation = intOpt(args, "generation");
    const chain = await openChainArg(name, args);
    const par = createParallelism(undefined, { readsAndWrites: true });
    const s = await runRestore({
      chain,
      generation,
      target,
      force: args.opts.has("force"),
      sparse: !args.opts.has("no-sparse"),
      hasher: par.hasher,
      writeRuns: par.writeRuns,
    }).finally(() => par.close());
    if (args.opts.has("json")) printJson({ ok: true, target, ...s });
    note(
      `restored generation ${s.generation} of ${chain.location} to ${
        isStdout(target) ? "standard output" : target
      }: ` +
        `${formatBytes(s.size)} (${s.blocks} blocks) in ${formatDuration(s.elapsedMs)} ` +
        `(${formatRate(s.size, s.elapsedMs)}), verified`,
    );
    return 0;
  },
};
