/**
 * The original `blockdiff_backup NAME CMD [ARGS...]` driver (blockdiff invoked as blockdiff_backup): CMD runs
 * as the original ran it, so existing cron lines and third-party dump commands keep working
 * (archiver/command_dumper.ts: descriptor 5 the last digest, 6 the new digest, stdout the diff, whose
 * extension comes from a -z/--gzip/--lzop among ARGS, as the original guessed it), with blockdiff's commit
 * rules: the chain's lock, temporary names, the output checked, a manifest, `NAME.ver` last. The run is
 * recorded for `status` like a backup's (NAME.last-backup.json). A CMD that fails or is killed publishes
 * nothing and its exit status is the run's.
 */
import * as fs from "node:fs";
import process from "node:process";
import { checkDirectory, runBackup } from "../archiver/backup.ts";
import { commandDumper, CommandFailed, findCommand } from "../archiver/command_dumper.ts";
import { installSignalHandlers, onCleanup } from "../cleanup.ts";
import { note, printOut } from "../cli/output.ts";
import { type Compression, DEFAULT_LEVEL } from "../compress/codec.ts";
import { formatBytes, formatDuration } from "../display/units.ts";
import { UsageError } from "../errors.ts";
import { DEFAULT_BLOCKSIZE } from "../format/digest.ts";
import { RunLog } from "../log/run_log.ts";
import { monitoredRun, type RunReport } from "../monitor/monitored_run.ts";
import { Chain } from "../store/chain.ts";
import { openChainForWrite } from "../store/writer.ts";

export const BLOCKDIFF_BACKUP_HELP = `usage: blockdiff_backup NAME CMD [ARGS...]

The original blockdiff's driver: takes generation N+1 of backup chain NAME by running CMD ARGS with the
chain's descriptors, as the original did: 5< NAME.N.md5 (when there is a generation N), 6> NAME.N+1.md5 and
the diff on stdout, into NAME.N+1, or NAME.N+1.gz / NAME.N+1.lzop when ARGS hold -z or --gzip / --lzop
(.zst for --zstd). CMD is found in PATH, e.g. ssh_lvm_dump or ssh_blockdiff_dump (links to blockdiff).

Unlike the original it holds the chain's lock (NAME.lock: a second run fails, exit 4), writes under
temporary names, checks what CMD wrote (the digest's block size is the chain's; the diff holds every
changed block and each matches the digest), adds the manifest NAME.N+1.json, and updates NAME.ver last.
If CMD fails or is killed, nothing is published and its exit status is this one's (127: not found).
The outcome is recorded in NAME.last-backup.json for 'blockdiff status'. The chain continues with
'blockdiff backup' and restores with 'blockdiff restore'.

environment: VERBOSE=1 prints the command line it runs ("running: ...") and the run's steps

examples:
  blockdiff_backup /backup/db ssh_lvm_dump -z root@db1 /dev/vg0/mysql
  blockdiff_backup /backup/web ssh_blockdiff_dump root@web1 /srv/data.img`;

/**
 * Runs `blockdiff_backup` with its arguments (after the program name); resolves with the exit code. Other
 * failures throw, for the caller to print and clean up after, as main() does (original/translate.ts).
 */
export async function runBlockdiffBackup(argv: string[]): Promise<number> {
  if (argv[0] === "--help" || argv[0] === "-h") {
    printOut(BLOCKDIFF_BACKUP_HELP + "\n");
    return 0;
  }
  if (argv.length < 2) throw new UsageError("usage: blockdiff_backup NAME CMD [ARGS...] (see --help)");
  const [name, command, ...args] = argv;
  const chain = new Chain(name);
  installSignalHandlers();
  return await monitoredRun(
    { command: "backup", chainSpec: name, record: true, metricsFile: undefined },
    (report) => drive({ chain, command, args, report }),
  );
}

/**
 * The diff's compression as the original guessed it: the last of -z/--gzip/--lzop among the arguments
 * (whoever they are meant for); --zstd, which the original did not know, for `blockdiff dump --zstd`.
 */
export function compressionOfArgs(args: string[]): Compression {
  let c: Compression = "none";
  for (const a of args) {
    if (a === "-z" || a === "--gzip") c = "gzip";
    else if (a === "--lzop") c = "lzop";
    else if (a === "--zstd") c = "zstd";
  }
  return c;
}

async function drive(
  o: { chain: Chain; command: string; args: string[]; report: RunReport },
): Promise<number> {
  const { chain, command, args, report } = o;
  const compression = compressionOfArgs(args);
  const log = new RunLog(null);
  checkDirectory(chain.dir);
  const writer = openChainForWrite(chain, { command: "backup", log: (l) => log.info(l) });
  const unregister = onCleanup(() => writer.lock.release());
  try {
    report.locked();
    const file = findCommand(command);
    if (file === null || !fs.existsSync(file)) {
      throw new CommandFailed(`${command}: command not found: nothing of this run was published`, 127);
    }
    const gen = writer.version + 1;
    if (process.env.VERBOSE) {
      const q = (s: string) => `"${s}"`;
      const fds = [
        ...(writer.version > 0 ? [`5< ${q(chain.digestPath(writer.version))}`] : []),
        `6> ${q(chain.digestPath(gen))}`,
        `> ${q(chain.diffPath(gen, compression))}`,
      ];
      process.stderr.write(`running: ${[command, ...args].map(q).join(" ")} ${fds.join(" ")}\n`);
    }
    const s = await runBackup({
      chain,
      version: writer.version,
      dumper: commandDumper({ command, file, args, chain, previous: writer.version, compression }),
      compression,
      level: DEFAULT_LEVEL[compression], // the command's own level is not known
      // an existing chain's block size is checked against the digest CMD wrote; a new one takes CMD's
      blocksize: (existing) => existing ?? DEFAULT_BLOCKSIZE,
      allowShrink: false,
      log,
      warn: (line) => {
        log.info(`warning: ${line}`);
        note(`warning: ${line}`);
      },
      tracking: { fullScan: false, fullScanEvery: 0, verify: false, maxPoolUsage: 90 },
    });
    const m = s.manifest;
    Object.assign(report, {
      bytesRead: m.sourceSize,
      bytesWritten: m.bytesWritten,
      blocksChanged: m.blocksChanged,
      generation: m.generation,
    });
    const kind = writer.version === 0 ? "full" : "incremental";
    note(
      `backup completed successfully: ${m.name}.${m.generation} ${kind}: ${m.blocksChanged}/${m.blocks} ` +
        `blocks changed, ${formatBytes(m.sourceSize)} in ${formatDuration(s.elapsedMs)}, ` +
        `${formatBytes(m.bytesWritten)} written to ${m.diffFile}`,
    );
    return 0;
  } catch (err) {
    if (!(err instanceof CommandFailed)) throw err;
    report.failure = err.message;
    note(err.message);
    return err.status;
  } finally {
    unregister();
    writer.lock.release();
  }
}
