import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { isatty } from "node:tty";
import process from "node:process";
import type { Writable } from "node:stream";
import type { Dumper } from "../archiver/backup.ts";
import { onCleanup } from "../cleanup.ts";
import { type Compression, DEFAULT_LEVEL } from "../compress/codec.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import { createParallelism, type Parallelism } from "../engine/parallel.ts";
import { BlockdiffError, describeIoError, UsageError } from "../errors.ts";
import { digestBlockCount } from "../format/digest.ts";
import { DigestCursor } from "../format/digest_cursor.ts";
import { FdSource } from "../io/byte_source.ts";
import { FdWritable } from "../io/sink.ts";
import { mysqlQuiesce } from "../mysql/quiesce.ts";
import { remoteDumper } from "../remote/remote_dumper.ts";
import { openInheritedFd } from "../runtime.ts";
import { wrapperQuiesce } from "../snapshot/wrapper_quiesce.ts";
import { openLocalSource } from "../source/local.ts";
import { localDumper } from "../source/local_dumper.ts";
import { parseSource, type SourceSpec } from "../source/spec.ts";
import type { OpenDigest } from "../store/chain.ts";
import type { TrackingRequest } from "../tracking/thin_tracking.ts";
import { expectPositionals, type ParsedArgs, stringOpt } from "./args.ts";
import { blockSizeRule } from "./block_size.ts";
import { type Command, HELP_OPTION } from "./command.ts";
import { MYSQL_HELP } from "./mysql_options.ts";
import { note } from "./output.ts";
import {
  SNAPSHOT_OPTIONS,
  SNAPSHOT_WRAPPER_HELP,
  type SnapshotOptions,
  snapshotOptionsFromArgs,
} from "./snapshot_options.ts";
import { SSH_HELP, SSH_OPTIONS, sshFromArgs } from "./ssh_options.ts";

export const dumpCommand: Command = {
  name: "dump",
  summary: "low level: write a diff of FILE (or stdin) against an old digest (original blockdiff_dump)",
  help:
    `usage: blockdiff dump [--block-size N] [-z|--gzip|--lzop|--zstd] [SOURCE] [5< old.md5] 6> new.md5 > diff

Compatible with the original blockdiff_dump: reads SOURCE (or stdin), writes the diff of the blocks whose
MD5 differs from the old digest (all blocks without one) to stdout and the new digest to fd 6.

SOURCE   a local file or block device, or a remote one: [user@]host[:port]:/path or ssh://user@host:port/path
         (read by blockdiff's agent on that host over one SSH connection, as 'backup' does; the original's
         ssh_blockdiff_dump). With --lvm-snapshot an LV, here or there (the original's ssh_lvm_dump)

options:
  fd 5, --old-digest FILE  digest of the previous generation (optional; its block size wins)
  fd 6, --new-digest FILE  where the new digest goes (required)
  --block-size N        block size without an old digest (default env BLOCKSIZE, else 16384); one that
                        differs from the old digest's is an error
  -z, --gzip / --lzop / --zstd  compress the diff (gzip and zstd in-process, lzop runs lzop; for a remote
                        SOURCE all of it on that host)
${SSH_HELP}
  --lvm-snapshot[=SIZE] SOURCE is an LV: dump an LVM snapshot of it, taken after sync and removed on every
                        path (classic snapshot of SIZE, default env SNAPSHOT_SIZE or 10G; thin LVs take no
                        size and keep no baseline). A classic snapshot that overflows fails the run.
  --mysql-lock          hold FLUSH TABLES WITH READ LOCK only while the snapshot is created (needs
                        --lvm-snapshot; for a remote SOURCE through the SSH connection, as seen from there)
${MYSQL_HELP}
  --mysql-lock-max-hold S  drop the lock and fail the run if lvcreate takes longer than S seconds
                        (default 30)
${SNAPSHOT_WRAPPER_HELP}
  -h, --help            this help

Lines about the snapshot and the lock go to stderr with env VERBOSE set; warnings always.

examples:
  blockdiff dump /dev/vg0/lv 6> lv.1.md5 > lv.1
  blockdiff dump -z /dev/vg0/lv 5< lv.1.md5 6> lv.2.md5 > lv.2.gz
  blockdiff dump --lzop root@db1:/dev/vg0/mysql --lvm-snapshot=5G 5< db.3.md5 6> db.4.md5 > db.4.lzop`,
  options: [
    HELP_OPTION,
    { name: "block-size", aliases: ["blocksize"], kind: "value" },
    { name: "gzip", short: "z", kind: "flag" },
    { name: "lzop", kind: "flag" },
    { name: "zstd", kind: "flag" },
    { name: "old-digest", kind: "value" },
    { name: "new-digest", kind: "value" },
    ...SSH_OPTIONS,
    ...SNAPSHOT_OPTIONS,
  ],
  async run(args) {
    const [file] = expectPositionals(
      args,
      0,
      1,
      "blockdiff dump [options] [SOURCE] 5< old.md5 6> new.md5 > diff",
    );
    const kinds = (["gzip", "lzop", "zstd"] as const).filter((k) => args.opts.has(k));
    if (kinds.length > 1) throw new UsageError(`dump: choose one of --gzip, --lzop, --zstd`);
    const compression: Compression = kinds[0] ?? "none";
    const blocksize = blockSizeRule({ option: stringOpt(args, "block-size"), env: process.env.BLOCKSIZE });
    const source = file === undefined ? null : parseSource(file);
    const snapshot = snapshotOptionsFromArgs(args);
    if (snapshot.plan && !source) {
      throw new UsageError("dump: --lvm-snapshot needs SOURCE, the LV to snapshot");
    }
    const straySsh = SSH_OPTIONS.find((o) => args.opts.has(o.name));
    if (straySsh && source?.kind !== "remote") {
      throw new UsageError(`dump: --${straySsh.name} is for a remote SOURCE ([user@]host[:port]:/path)`);
    }
    if (isatty(1)) throw new UsageError("dump: refusing to write a binary diff to a terminal");

    const oldPath = stringOpt(args, "old-digest");
    const oldFd = oldPath !== undefined ? openPath(oldPath, "r") : openInheritedFd(5, "r");
    const newPath = stringOpt(args, "new-digest");
    const newFd = newPath !== undefined ? openPath(newPath, "w") : openInheritedFd(6, "w");
    if (newFd === null) {
      throw new UsageError("dump: no place for the new digest: open fd 6 or give --new-digest");
    }
    const diffOut = new FdWritable(1, { sync: false, hash: false });
    const digestOut = new FdWritable(newFd, { sync: false, hash: false });
    const old = oldFd === null ? null : { fd: oldFd, what: oldPath ?? "old digest (fd 5)" };
    const par = createParallelism();
    try {
      if (source === null || (source.kind === "local" && !snapshot.plan)) {
        await dumpLocal({ path: source?.path ?? null, old, blocksize, par, diffOut, digestOut, compression });
      } else {
        await dumpThroughDumper({
          source,
          args,
          snapshot,
          old,
          blocksize,
          par,
          diffOut,
          digestOut,
          compression,
        });
      }
    } catch (err) {
      throw err instanceof BlockdiffError ? err : describeIoError(`dump of ${file ?? "stdin"}`, err);
    } finally {
      await par.close();
    }
    return 0;
  },
};

interface DumpInputs {
  /** The old digest's descriptor (fd 5 or --old-digest), and what messages call it. */
  old: { fd: number; what: string } | null;
  blocksize: (existing: number | null) => number;
  par: Parallelism;
  diffOut: Writable;
  digestOut: Writable;
  compression: Compression;
}

/** A local file (or stdin) without a snapshot: the old digest is streamed (a pipe will do). */
async function dumpLocal(o: DumpInputs & { path: string | null }): Promise<void> {
  let old: DigestCursor | null = null, oldBs: number | null = null;
  if (o.old) {
    const opened = await DigestCursor.open(new FdSource(o.old.fd), o.old.what);
    [old, oldBs] = [opened.cursor, opened.blocksize];
  }
  try {
    const bs = o.blocksize(oldBs);
    const input = o.path !== null ? (await openLocalSource(o.path)).source : new FdSource(0, false);
    try {
      await dumpToStreams({
        source: input,
        blocksize: bs,
        oldDigest: old,
        par: o.par,
        diffOut: o.diffOut,
        digestOut: o.digestOut,
        compression: o.compression,
        level: DEFAULT_LEVEL[o.compression],
      });
    } finally {
      await input.close();
    }
  } finally {
    await old?.close();
  }
}

/**
 * A remote SOURCE, or an LV's snapshot: the Dumper `backup` uses (local_dumper.ts, remote_dumper.ts), without
 * change tracking (no baseline is kept). The old digest is read from a file: the remote agent is told its
 * length before it is sent, so one on a pipe is first copied to a temporary file.
 */
async function dumpThroughDumper(
  o: DumpInputs & { source: SourceSpec; args: ParsedArgs; snapshot: SnapshotOptions },
): Promise<void> {
  const { plan, mysql, wrapper } = o.snapshot;
  const log = (line: string) => {
    if (process.env.VERBOSE || /(^|: )warning: /.test(line)) note(line);
  };
  const spool = new Spool();
  let old: OpenDigest | null = null;
  try {
    const oldPath = o.old && await digestFileOf(o.old.fd, spool);
    if (oldPath) old = await openDigest(oldPath, o.old!.what);
    const blocksize = o.blocksize(old?.blocksize ?? null);
    const quiesceWrapper = wrapper && wrapperQuiesce({ words: wrapper, log });
    const dumper: Dumper = o.source.kind === "local"
      ? await localDumper({
        path: o.source.path,
        par: o.par,
        snapshot: plan && {
          plan,
          mysql: mysql && mysqlQuiesce({ conn: mysql.conn, lock: mysql.lock, log }),
          wrapper: quiesceWrapper,
          tracking: false,
          log,
        },
      })
      : await remoteDumper({
        spec: o.source,
        ssh: sshFromArgs(o.args),
        log,
        snapshot: plan && { plan, mysql, wrapper: quiesceWrapper, tracking: false },
      });
    try {
      await dumper.dump({
        blocksize,
        oldDigest: old,
        oldDigestPath: oldPath,
        diffOut: o.diffOut,
        digestOut: o.digestOut,
        compression: o.compression,
        level: DEFAULT_LEVEL[o.compression],
        onProgress: () => {},
        tracking: UNTRACKED,
      });
    } finally {
      await dumper.close();
    }
  } finally {
    await old?.cursor.close();
    spool.remove();
  }
}

/**
 * What the dumpers are given as the change tracking request, which they pass on only with `tracking: true`
 * in their snapshot options (dump gives false): dump has no chain whose baseline could be kept.
 */
const UNTRACKED: TrackingRequest = {
  chainId: "00000000",
  generation: 0,
  previous: null,
  forceFullScan: null,
  verify: false,
  maxPoolUsage: 100,
};

/** A regular file is read where it is (through /proc/self/fd); anything else is copied to the spool. */
async function digestFileOf(fd: number, spool: Spool): Promise<string> {
  if (fs.fstatSync(fd).isFile()) return `/proc/self/fd/${fd}`;
  const file = spool.file("old.md5");
  const out = fs.openSync(file, "w", 0o600);
  try {
    const src = new FdSource(fd, false);
    const buf = new Uint8Array(1 << 20);
    for (let n; (n = await src.read(buf, 0, buf.length)) > 0;) {
      for (let off = 0; off < n;) off += fs.writeSync(out, buf, off, n - off);
    }
  } finally {
    fs.closeSync(out);
  }
  return file;
}

async function openDigest(file: string, what: string): Promise<OpenDigest> {
  const src = new FdSource(fs.openSync(file, "r"));
  try {
    const blocks = digestBlockCount(fs.fstatSync(src.fd).size, what);
    return { blocks, ...await DigestCursor.open(src, what) };
  } catch (err) {
    await src.close();
    throw err;
  }
}

/** A private temporary directory (in TMPDIR), made when first needed, removed at the end and on signals. */
class Spool {
  #dir: string | null = null;
  #unregister: () => void = () => {};

  file(name: string): string {
    if (this.#dir === null) {
      this.#dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-dump-"));
      this.#unregister = onCleanup(() => this.remove());
    }
    return path.join(this.#dir, name);
  }

  remove(): void {
    this.#unregister();
    if (this.#dir !== null) fs.rmSync(this.#dir, { recursive: true, force: true });
    this.#dir = null;
  }
}

function openPath(p: string, mode: "r" | "w"): number {
  try {
    return fs.openSync(p, mode, 0o600);
  } catch (err) {
    throw describeIoError(`opening ${p}`, err);
  }
}
