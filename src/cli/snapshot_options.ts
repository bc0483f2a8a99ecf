/**
 * The snapshot options shared by `backup` and `dump`: `--lvm-snapshot[=SIZE]`, and what holds writes still
 * while the snapshot is created: `--mysql-lock` (this program's read lock) or `--snapshot-wrapper` (a command
 * of the user's, run on this host around the snapshot's creation).
 */
import process from "node:process";
import { UsageError } from "../errors.ts";
import type { MysqlConnectionOptions } from "../mysql/credentials.ts";
import type { ReadLockOptions } from "../mysql/read_lock.ts";
import type { SnapshotPlan } from "../snapshot/session.ts";
import { parseWrapperWords } from "../snapshot/wrapper_quiesce.ts";
import { intOpt, type OptionSpec, type ParsedArgs, stringOpt } from "./args.ts";
import { MYSQL_OPTIONS, mysqlFromArgs, readLockFromArgs } from "./mysql_options.ts";

export const SNAPSHOT_OPTIONS: OptionSpec[] = [
  { name: "lvm-snapshot", kind: "optional" },
  { name: "snapshot-wrapper", kind: "value" },
  { name: "mysql-lock", kind: "flag" },
  { name: "mysql-lock-max-hold", aliases: ["lock-max-hold"], kind: "value" },
  ...MYSQL_OPTIONS,
];

/** `--snapshot-wrapper`'s help, and what LVCREATE_PREFIX means beside it. */
export const SNAPSHOT_WRAPPER_HELP =
  `  --snapshot-wrapper "CMD ARGS"  run CMD ARGS on this host around the snapshot's creation (needs
                        --lvm-snapshot; not with --mysql-lock): it runs as CMD ARGS BLOCKDIFF snapshot-gate
                        SOCKET, the snapshot is created while that gate runs, the gate then exits 0 (1 when
                        no snapshot was made) and CMD must exit 0, or the run fails. Plain words only (no
                        quotes or shell characters). This is what the original's LVCREATE_PREFIX did, e.g.
                        --snapshot-wrapper "blockdiff mysqllock --mysql-host db1 --mysql-user backup --"
                        env LVCREATE_PREFIX: words put in front of lvcreate itself, on the host that runs
                        it (for a remote SOURCE the remote host)`;

export interface SnapshotOptions {
  /** `--lvm-snapshot[=SIZE]`, null without it. */
  plan: SnapshotPlan | null;
  /** `--mysql-lock` and its connection and lock options. */
  mysql: { conn: MysqlConnectionOptions; lock: ReadLockOptions } | null;
  /** `--snapshot-wrapper`'s words. */
  wrapper: string[] | null;
}

/** The snapshot options, checked: each needs `--lvm-snapshot`, and one quiesce at most. */
export function snapshotOptionsFromArgs(args: ParsedArgs): SnapshotOptions {
  const plan = snapshotPlan(args);
  const strayMysql = MYSQL_OPTIONS.find((o) => args.opts.has(o.name));
  if (strayMysql && !args.opts.has("mysql-lock")) {
    throw new UsageError(`--${strayMysql.name} needs --mysql-lock`);
  }
  if (args.opts.has("mysql-lock") && !plan) {
    throw new UsageError(
      "--mysql-lock needs --lvm-snapshot: the lock is held only while the snapshot is made",
    );
  }
  const wrapperText = stringOpt(args, "snapshot-wrapper");
  if (wrapperText !== undefined && !plan) {
    throw new UsageError("--snapshot-wrapper needs --lvm-snapshot: it runs while the snapshot is made");
  }
  if (wrapperText !== undefined && args.opts.has("mysql-lock")) {
    throw new UsageError("choose one of --mysql-lock and --snapshot-wrapper");
  }
  return {
    plan,
    mysql: args.opts.has("mysql-lock")
      ? {
        conn: mysqlFromArgs(args),
        lock: { ...readLockFromArgs(args), maxHoldSeconds: intOpt(args, "mysql-lock-max-hold") ?? 30 },
      }
      : null,
    wrapper: wrapperText === undefined ? null : parseWrapperWords(wrapperText),
  };
}

/** `--lvm-snapshot[=SIZE]`: SIZE, else env SNAPSHOT_SIZE, else 10G (thin LVs ignore it); LVCREATE_PREFIX. */
function snapshotPlan(args: ParsedArgs): SnapshotPlan | null {
  const v = args.opts.get("lvm-snapshot");
  if (v === undefined) return null;
  const size = v === true ? (process.env.SNAPSHOT_SIZE || "10G") : v;
  if (!/^\d+(\.\d+)?[bBsSkKmMgGtTpPeE]?$/.test(size)) {
    throw new UsageError(`--lvm-snapshot size '${size}' is not an LVM size`);
  }
  return { size, lvcreatePrefix: process.env.LVCREATE_PREFIX ?? "" };
}
