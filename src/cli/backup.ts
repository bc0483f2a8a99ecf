import process from "node:process";
import { checkDirectory, runBackup } from "../archiver/backup.ts";
import { onCleanup } from "../cleanup.ts";
import { checkLevel, parseCompression } from "../compress/codec.ts";
import { chooseCompression } from "../archiver/compression_choice.ts";
import { createParallelism } from "../engine/parallel.ts";
import { RunLog } from "../log/run_log.ts";
import { formatBytes, formatDuration, formatRate } from "../display/units.ts";
import { localDumper } from "../source/local_dumper.ts";
import { remoteDumper } from "../remote/remote_dumper.ts";
import { wrapperQuiesce } from "../snapshot/wrapper_quiesce.ts";
import { describeLockHeld } from "../mysql/read_lock.ts";
import { mysqlQuiesce } from "../mysql/quiesce.ts";
import { MYSQL_HELP } from "./mysql_options.ts";
import { SNAPSHOT_OPTIONS, SNAPSHOT_WRAPPER_HELP, snapshotOptionsFromArgs } from "./snapshot_options.ts";
import { parseSource } from "../source/spec.ts";
import { Chain } from "../store/chain.ts";
import { monthlyChainName } from "../store/monthly.ts";
import { RunLock } from "../store/run_lock.ts";
import { expectPositionals, intOpt, type ParsedArgs, stringOpt } from "./args.ts";
import { blockSizeRule } from "./block_size.ts";
import { logOutcome } from "./log_outcome.ts";
import { SSH_HELP, SSH_OPTIONS, sshFromArgs } from "./ssh_options.ts";
import { BlockdiffError, UsageError } from "../errors.ts";
import type { Parallelism } from "../engine/parallel.ts";
import type { RetentionPolicy } from "../pruner/policy.ts";
import { pruneJson, pruneLocked, pruneSummary, requirePolicy } from "./prune.ts";
import { RETENTION_OPTIONS } from "./retention_options.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { note, printJson } from "./output.ts";
import { METRICS_HELP, METRICS_OPTION, monitorOptions } from "./metrics_option.ts";
import { monitoredRun, type RunReport } from "../monitor/monitored_run.ts";
import { connectBucket } from "../s3/connect.ts";
import { copyChain } from "../s3/copy.ts";
import { isS3Location, parseS3Location, type S3Location } from "../s3/location.ts";
import { openChainArgForWrite, S3_ENDPOINT_OPTION, S3_HELP, s3Endpoint } from "./chain_location.ts";

export const backupCommand: Command = {
  name: "backup",
  summary: "take the next generation (full, then incremental) of chain NAME from SOURCE",
  help: `usage: blockdiff backup NAME SOURCE [options]

Takes generation N+1 of backup chain NAME (a path: DIR/NAME; files NAME.N[.gz|.lzop|.zst], NAME.N.md5,
NAME.N.json, NAME.ver). Generation 1 holds every block; later ones hold the blocks whose MD5 changed.
Files are written under temporary names and published atomically; NAME.ver is updated last. The run holds
the chain's lock (NAME.lock) throughout; one that finds NAME.ver disagreeing with the generations on disk
changes nothing and exits 3 (see 'blockdiff repair').

SOURCE   a local file or block device, or a remote one: [user@]host[:port]:/path or ssh://user@host:port/path
         (over one SSH connection; the remote host needs nothing installed: blockdiff runs itself there
         as its agent, uploaded once into ~/.cache/blockdiff/, and hashes and compresses on that host)

options:
  --compress KIND       gzip, lzop, zstd or none; extension .gz, .lzop, .zst (default: the chain's
                        newest generation's, none for a new chain)
  --compress-level N    gzip/lzop 1-9, zstd 1-19 (default: the chain's with its compression, else 3)
  --block-size N        block size of a new chain (default 16384, or env BLOCKSIZE); an existing
                        chain keeps its own and a different --block-size is an error
  --monthly             append -YYYYMM to NAME: a new full backup every month
  --lock FILE           also lock FILE (an flock, like setlock -n): fail at once (exit 4) if another run
                        holds it. Every run already locks NAME.lock, whatever this says
  --allow-shrink        record an empty (0-byte) source although the last generation had data
  --log FILE            append timestamped lines about the run to FILE
  --json                print a JSON summary on stdout
${METRICS_HELP}
  --copy-to s3://BUCKET/[PREFIX/]NAME  then copy the chain's new generations to S3, as 'blockdiff copy'
                        does (without the chain's lock); a failed copy fails the run but the backup stays
${S3_HELP}
  --prune --keep-RULE N...  after the backup, prune the chain by these rules, under the same lock (see
                        'blockdiff prune --help'); a failed prune leaves the new generation in place
${SSH_HELP}
  --lvm-snapshot[=SIZE] SOURCE is an LV (here or on the remote host): dump an LVM snapshot of it, taken after
                        sync and removed on every path (classic snapshot of SIZE, default env SNAPSHOT_SIZE
                        or 10G; thin LVs take no size). A classic snapshot that overflows fails the run.
                        A thin LV's snapshot is kept as the chain's baseline: the next run reads only
                        the blocks the pool's metadata says changed since (thin_delta on that host)
  --full-scan           read the whole volume this time (the baseline is still kept)
  --full-scan-every N   read the whole volume every Nth generation
  --verify-tracking     also read the whole volume and fail if change tracking found other blocks
  --thin-pool-max-usage PCT  refuse to snapshot a thin LV whose pool is fuller (default 90)
  --mysql-lock          hold FLUSH TABLES WITH READ LOCK only while the snapshot is created (needs
                        --lvm-snapshot); binlog file/position and GTID go into NAME.N.json. For a remote
                        SOURCE the connection goes through the SSH connection: host, port and socket are
                        as seen from the database host, and the password stays on this host
${MYSQL_HELP}
  --mysql-lock-max-hold S  drop the lock and fail the run if lvcreate takes longer than S seconds
                        (default 30; former name --lock-max-hold)
${SNAPSHOT_WRAPPER_HELP}
  -h, --help            this help

environment: SSH_BLOCKDIFF_PREFIX runs the remote agent under a prefix, e.g. "ionice -c3 nice -n19"

examples:
  blockdiff backup /backup/db /dev/vg0/mysql --compress zstd
  blockdiff backup /backup/db /dev/vg0/mysql --monthly --log /backup/db.log
  blockdiff backup /backup/web root@web1:/srv/data.img --compress zstd
  blockdiff backup /backup/db /dev/vg0/mysql --copy-to s3://offsite/db1/db
  blockdiff backup /backup/db root@db1:/dev/vg0/mysql --lvm-snapshot=5G --mysql-lock \\
      --mysql-socket /run/mysqld/mysqld.sock --mysql-user backup --password-file /root/.db-pw --monthly`,
  options: [
    HELP_OPTION,
    JSON_OPTION,
    { name: "compress", kind: "value" },
    { name: "compress-level", kind: "value" },
    { name: "block-size", aliases: ["blocksize"], kind: "value" },
    { name: "monthly", kind: "flag" },
    { name: "lock", kind: "value" },
    { name: "allow-shrink", kind: "flag" },
    { name: "full-scan", kind: "flag" },
    { name: "full-scan-every", kind: "value" },
    { name: "verify-tracking", kind: "flag" },
    { name: "thin-pool-max-usage", kind: "value" },
    { name: "log", kind: "value" },
    METRICS_OPTION,
    { name: "prune", kind: "flag" },
    ...RETENTION_OPTIONS,
    ...SSH_OPTIONS,
    ...SNAPSHOT_OPTIONS,
    { name: "copy-to", kind: "value" },
    S3_ENDPOINT_OPTION,
  ],
  async run(args) {
    const log = new RunLog(stringOpt(args, "log") ?? null);
    const what = `backup ${args.positionals[0] ?? ""}`.trim();
    const state = { published: null as number | null };
    return await monitoredRun(
      monitorOptions(args, "backup"),
      (report) =>
        logOutcome(log, what, () => backup(args, log, state, report), {
          interrupted: () =>
            state.published === null
              ? "nothing of this run was published"
              : `generation ${state.published} was published; the prune after it was cut short`,
        }),
    );
  },
};

async function backup(
  args: ParsedArgs,
  log: RunLog,
  state: { published: number | null },
  report: RunReport,
): Promise<number> {
  const [nameArg, sourceArg] = expectPositionals(args, 2, 2, "blockdiff backup NAME SOURCE [options]");
  const given = stringOpt(args, "compress");
  const givenCompression = given === undefined ? undefined : parseCompression(given);
  const givenLevel = intOpt(args, "compress-level", 0);
  if (givenCompression !== undefined && givenLevel !== undefined) checkLevel(givenCompression, givenLevel);
  const blocksize = blockSizeRule({ option: stringOpt(args, "block-size"), env: process.env.BLOCKSIZE });
  const source = parseSource(sourceArg);
  const { plan, mysql, wrapper: wrapperWords } = snapshotOptionsFromArgs(args);
  const strayKeep = RETENTION_OPTIONS.find((o) => args.opts.has(o.name));
  if (strayKeep && !args.opts.has("prune")) throw new UsageError(`--${strayKeep.name} needs --prune`);
  const retention = args.opts.has("prune") ? requirePolicy(args) : null;
  const inBucket = isS3Location(nameArg);
  const copyTo = copyTarget(args, inBucket);
  if (inBucket) {
    if (args.opts.has("monthly")) throw new UsageError("--monthly: not for chains in S3 (name the month)");
  }
  const local = () => new Chain(args.opts.has("monthly") ? monthlyChainName(nameArg, new Date()) : nameArg);
  /** A line for the log; one that says "warning: " (here or from the remote agent) goes to stderr too. */
  const logLine = (line: string) => {
    log.info(line);
    if (/(^|: )warning: /.test(line)) note(line.replace(/^(.*?: )?warning: /, "warning: $1"));
  };
  const warn = (line: string) => {
    log.info(`warning: ${line}`);
    note(`warning: ${line}`);
  };
  if (!inBucket) checkDirectory(local().dir);
  const writer = await openChainArgForWrite(nameArg, args, { command: "backup", log: logLine, local });
  const { chain } = writer;
  const locks = [writer.lock];
  const unregister = onCleanup(() => locks.forEach((l) => l.release()));
  const par = createParallelism();
  // deno-lint-ignore no-explicit-any
  let result: { manifest: { generation: number } } & Record<string, any>;
  try {
    const lockPath = stringOpt(args, "lock");
    if (lockPath !== undefined && !writer.lock.isFile(lockPath)) {
      locks.push(RunLock.acquire(lockPath, `lock file ${lockPath}`, "backup"));
    }
    report.locked();
    // without --compress the chain keeps its own compression
    const { compression, level, change } = chooseCompression({
      chain,
      version: writer.version,
      given: givenCompression,
      level: givenLevel,
    });
    if (change) {
      log.info(change);
      note(change);
    }
    const wrapper = wrapperWords && wrapperQuiesce({ words: wrapperWords, log: logLine });
    const s = await runBackup({
      chain,
      version: writer.version,
      dumper: source.kind === "local"
        ? await localDumper({
          path: source.path,
          par,
          snapshot: plan && {
            plan,
            mysql: mysql && mysqlQuiesce({ conn: mysql.conn, lock: mysql.lock, log: logLine }),
            wrapper,
            tracking: true,
            log: logLine,
          },
        })
        : await remoteDumper({
          spec: source,
          ssh: sshFromArgs(args),
          log: logLine,
          snapshot: plan && { plan, mysql, wrapper, tracking: true },
        }),
      compression,
      level,
      blocksize,
      allowShrink: args.opts.has("allow-shrink"),
      log,
      warn,
      tracking: {
        fullScan: args.opts.has("full-scan"),
        fullScanEvery: intOpt(args, "full-scan-every", 0) ?? 0,
        verify: args.opts.has("verify-tracking"),
        maxPoolUsage: percentOpt(args, "thin-pool-max-usage") ?? 90,
      },
    });
    const m = s.manifest;
    state.published = m.generation;
    Object.assign(report, {
      bytesRead: m.scan?.bytesRead ?? m.sourceSize,
      bytesWritten: m.bytesWritten,
      blocksChanged: m.blocksChanged,
      generation: m.generation,
    });
    const pct = m.blocks ? ((m.blocksChanged / m.blocks) * 100).toFixed(1) : "0.0";
    const scanned = m.scan?.method === "thin_delta"
      ? `${formatBytes(m.scan.bytesRead)} of ${formatBytes(m.sourceSize)} read (thin_delta)`
      : `${formatBytes(m.sourceSize)} read${m.scan?.reason ? " (full scan)" : ""}`;
    note(
      `${m.name}.${m.generation} ${m.generation === 1 ? "full" : "incremental"}: ` +
        `${m.blocksChanged}/${m.blocks} blocks changed (${pct}%), ${scanned} in ` +
        `${formatDuration(s.elapsedMs)} (${formatRate(m.sourceSize, s.elapsedMs)}), ` +
        `${formatBytes(m.bytesWritten)} written to ${m.diffFile}` +
        (m.mysql ? `; ${describeLockHeld(m.mysql)}` : ""),
    );
    const pruned = retention &&
      await pruneAfterBackup({ chain, policy: retention, log, par, generation: m.generation });
    result = { ok: true, elapsedMs: s.elapsedMs, path: s.diffPath, manifest: m, prune: pruned };
  } finally {
    await par.close();
    unregister();
    locks.forEach((l) => l.release());
  }
  // the copy needs no lock: the next backup need not wait for the upload
  const copied = copyTo &&
    await copyAfterBackup({ chain, dest: copyTo, args, log, generation: result.manifest.generation });
  if (args.opts.has("json")) printJson({ ...result, copy: copied ?? null });
  return 0;
}

/** `--copy-to s3://...`: checked before the backup, used after it. */
function copyTarget(args: ParsedArgs, inBucket: boolean): S3Location | null {
  const v = stringOpt(args, "copy-to");
  if (v === undefined) {
    if (args.opts.has("s3-endpoint") && !inBucket) {
      throw new UsageError("--s3-endpoint goes with --copy-to or NAME s3://...");
    }
    return null;
  }
  if (inBucket) throw new UsageError("--copy-to: NAME is a chain in S3 already");
  if (!isS3Location(v)) {
    throw new UsageError(`--copy-to: '${v}' is not an s3://BUCKET/[PREFIX/]NAME location`);
  }
  s3Endpoint(args);
  return parseS3Location(v);
}

/** Copies the chain's new generations to S3; a failure says that the backup stands. */
async function copyAfterBackup(o: {
  chain: Chain;
  dest: S3Location;
  args: ParsedArgs;
  log: RunLog;
  generation: number;
}) {
  try {
    const bucket = await connectBucket({ bucket: o.dest.bucket, endpoint: s3Endpoint(o.args) });
    const line = (l: string) => {
      o.log.info(l);
      note(l);
    };
    const r = await copyChain({ chain: o.chain, dest: o.dest, bucket, log: line });
    if (!r.copied.length) line(`${o.dest.url} is up to date (generation ${r.version})`);
    return r;
  } catch (err) {
    if (!(err instanceof BlockdiffError)) throw err;
    throw new BlockdiffError(
      `generation ${o.generation} of ${o.chain.name} was backed up, but the copy to ${o.dest.url} failed: ` +
        err.message,
      err.exitCode,
    );
  }
}

function percentOpt(args: ParsedArgs, name: string): number | undefined {
  const v = intOpt(args, name, 1);
  if (v !== undefined && v > 100) {
    throw new UsageError(`--${name} must be a percentage from 1 to 100, not '${v}'`);
  }
  return v;
}

/** `--prune`: the policy applied once the new generation is in place; a failure says that it stands. */
async function pruneAfterBackup(o: {
  chain: Chain;
  policy: RetentionPolicy;
  log: RunLog;
  par: Parallelism;
  generation: number;
}) {
  try {
    const r = await pruneLocked(o);
    note(`prune ${o.chain.name}: ${pruneSummary(o.chain, r.plan, r.bytesFreed, r.elapsedMs)}`);
    return pruneJson({ ...r, dryRun: false });
  } catch (err) {
    if (!(err instanceof BlockdiffError)) throw err;
    throw new BlockdiffError(
      `generation ${o.generation} of ${o.chain.name} was backed up, but the prune after it failed: ${err.message}`,
      err.exitCode,
    );
  }
}
