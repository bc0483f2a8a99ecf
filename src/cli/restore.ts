import { createParallelism } from "../engine/parallel.ts";
import { formatBytes, formatDuration, formatRate } from "../log/format.ts";
import { runRestore } from "../restorer/restore.ts";
import { Chain } from "../store/chain.ts";
import { expectPositionals, intOpt } from "./args.ts";
import { type Command, GENERATION_OPTION, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { note, printJson } from "./output.ts";

export const restoreCommand: Command = {
  name: "restore",
  summary: "rebuild generation K of chain NAME into TARGET, verified against its digest",
  help: `usage: blockdiff restore NAME TARGET [--generation K]

Rebuilds generation K (default: the last complete one) of chain NAME in one pass over generations 1..K:
each block is taken from the newest generation holding it, checked against generation K's digest, and
written once. The image gets the recorded size.

TARGET   a file: written as TARGET.tmp-PID and renamed over TARGET only when every block checked out;
         a block device: written in place (on a failure the device holds a partial image; exit 3)

options:
  -g, --generation K    generation to restore (default: the last)
  --json                print a JSON summary on stdout
  -h, --help            this help

examples:
  blockdiff restore /backup/db /restore/db.img
  blockdiff restore /backup/db-202611 /dev/vg0/restore --generation 12`,
  options: [HELP_OPTION, JSON_OPTION, GENERATION_OPTION],
  async run(args) {
    const [name, target] = expectPositionals(args, 2, 2, "blockdiff restore NAME TARGET [--generation K]");
    const par = createParallelism();
    const s = await runRestore({
      chain: new Chain(name),
      generation: intOpt(args, "generation"),
      target,
      hasher: par.hasher,
    }).finally(() => par.close());
    if (args.opts.has("json")) printJson({ ok: true, target, ...s });
    note(
      `restored generation ${s.generation} of ${name} to ${target}: ${
        formatBytes(s.size)
      } (${s.blocks} blocks) ` +
        `in ${formatDuration(s.elapsedMs)} (${formatRate(s.size, s.elapsedMs)}), verified`,
    );
    return 0;
  },
};
