import process from "node:process";
import { runBackup } from "../archiver/backup.ts";
import { onCleanup } from "../cleanup.ts";
import { checkLevel, DEFAULT_LEVEL, parseCompression } from "../compress/codec.ts";
import { createParallelism } from "../engine/parallel.ts";
import { UsageError } from "../errors.ts";
import { checkBlocksize } from "../format/digest.ts";
import { RunLog } from "../log/cronlog.ts";
import { formatBytes, formatDuration, formatRate } from "../log/format.ts";
import { localDumper } from "../source/local_dumper.ts";
import { Chain } from "../store/chain.ts";
import { RunLock } from "../store/lock.ts";
import { expectPositionals, intOpt, sizeOpt, stringOpt } from "./args.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { note, printJson } from "./output.ts";

export const backupCommand: Command = {
  name: "backup",
  summary: "take the next generation (full, then incremental) of chain NAME from SOURCE",
  help: `usage: blockdiff backup NAME SOURCE [options]

Takes generation N+1 of backup chain NAME (a path: DIR/NAME; files NAME.N[.gz|.lzop|.zst], NAME.N.md5,
NAME.N.json, NAME.ver). Generation 1 holds every block; later ones hold the blocks whose MD5 changed.
Files are written under temporary names and published atomically; NAME.ver is updated last.

SOURCE   a local file or block device

options:
  --compress KIND       gzip, lzop, zstd or none (default none); extension .gz, .lzop, .zst
  --compress-level N    gzip/lzop 1-9, zstd 1-19 (default 3)
  --block-size N        block size of a new chain (default 16384, or env BLOCKSIZE); an existing
                        chain keeps its own and a different --block-size is an error
  --monthly             append -YYYYMM to NAME: a new full backup every month
  --lock FILE           fail at once (exit 4) if another run holds FILE
  --log FILE            append timestamped lines about the run to FILE
  --json                print a JSON summary on stdout
  -h, --help            this help

examples:
  blockdiff backup /backup/db /dev/vg0/mysql --compress zstd
  blockdiff backup /backup/db /dev/vg0/mysql --monthly --lock /backup/db.lock --log /backup/db.log`,
  options: [
    HELP_OPTION,
    JSON_OPTION,
    { name: "compress", kind: "value" },
    { name: "compress-level", kind: "value" },
    { name: "block-size", aliases: ["blocksize"], kind: "value" },
    { name: "monthly", kind: "flag" },
    { name: "lock", kind: "value" },
    { name: "log", kind: "value" },
  ],
  async run(args) {
    const [nameArg, sourceArg] = expectPositionals(args, 2, 2, "blockdiff backup NAME SOURCE [options]");
    const compression = parseCompression(stringOpt(args, "compress") ?? "none");
    const level = checkLevel(compression, intOpt(args, "compress-level", 0) ?? DEFAULT_LEVEL[compression]);
    const explicitBs = sizeOpt(args, "block-size") ?? null;
    if (explicitBs !== null) checkBlocksize(explicitBs, "--block-size");
    const envBs = process.env.BLOCKSIZE ? Number(process.env.BLOCKSIZE) : null;
    if (envBs !== null) checkBlocksize(envBs, "BLOCKSIZE");
    if (looksRemote(sourceArg)) {
      throw new UsageError(`remote sources (${sourceArg}) are not supported by this version yet`);
    }
    const chain = new Chain(args.opts.has("monthly") ? nameArg + monthSuffix(new Date()) : nameArg);
    const log = new RunLog(stringOpt(args, "log") ?? null);
    const lockPath = stringOpt(args, "lock");
    const lock = lockPath ? RunLock.acquire(lockPath) : null;
    const unregister = onCleanup(() => lock?.release());
    const par = createParallelism();
    try {
      // An existing chain's block size always wins over BLOCKSIZE (as in the original); --block-size must match.
      const blocksize = explicitBs ?? (chain.readVersion() === 0 ? envBs : null);
      const s = await runBackup({
        chain,
        dumper: localDumper(sourceArg, par.hasher),
        compression,
        pieces: par.compress,
        level,
        blocksize,
        log,
      });
      const m = s.manifest;
      if (args.opts.has("json")) {
        printJson({ ok: true, elapsedMs: s.elapsedMs, path: s.diffPath, manifest: m });
      }
      const pct = m.blocks ? ((m.blocksChanged / m.blocks) * 100).toFixed(1) : "0.0";
      note(
        `${m.name}.${m.generation} ${m.generation === 1 ? "full" : "incremental"}: ` +
          `${m.blocksChanged}/${m.blocks} blocks changed (${pct}%), ${formatBytes(m.sourceSize)} read in ` +
          `${formatDuration(s.elapsedMs)} (${formatRate(m.sourceSize, s.elapsedMs)}), ` +
          `${formatBytes(m.bytesWritten)} written to ${m.diffFile}`,
      );
      return 0;
    } finally {
      await par.close();
      unregister();
      lock?.release();
    }
  },
};

function monthSuffix(d: Date): string {
  return `-${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, "0")}`;
}

/** `host:/path`, `user@host:/path`, `host:port:/path`, `ssh://...` */
function looksRemote(s: string): boolean {
  return s.startsWith("ssh://") || /^[^/]+:/.test(s);
}
