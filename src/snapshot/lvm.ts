/**
 * LVM snapshot lifecycle on the host that holds the volume (run by the agent there): `sync`, `lvcreate
 * --snapshot` (classic with a size, thin without one; LVCREATE_PREFIX in front as in the original), a
 * unique name per run, `lvremove -f` on every path, stale snapshots of crashed runs reported, and a classic
 * snapshot that overflowed (became invalid) during the dump detected.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import { deviceNumber } from "../io/block_device.ts";
import process from "node:process";
import { BlockdiffError } from "../errors.ts";

export const SNAPSHOT_TAG = "bdsnap";
const LVM_ENV = { ...process.env, LVM_SUPPRESS_FD_WARNINGS: "1" };

export interface Snapshot {
  vg: string;
  name: string;
  device: string;
  thin: boolean;
}

/** Runs an LVM (or device-mapper) command; its last error line becomes the message. */
export function lvm(args: string[]): string {
  try {
    return execFileSync(args[0], args.slice(1), {
      encoding: "utf8",
      env: LVM_ENV,
      stdio: ["ignore", "pipe", "pipe"],
    });
  } catch (err) {
    throw lvmError(args, err);
  }
}

/** As lvm(), without blocking this process (timers, e.g. a lock's hold limit, keep running). */
export function lvmAsync(args: string[]): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(
      args[0],
      args.slice(1),
      { encoding: "utf8", env: LVM_ENV },
      (err, stdout, stderr) => err ? reject(lvmError(args, Object.assign(err, { stderr }))) : resolve(stdout),
    )
  );
}

function lvmError(args: string[], err: unknown): BlockdiffError {
  const e = err as { stderr?: string; message?: string };
  const why = (e.stderr ?? "").trim().split("\n").filter((l) => !/WARNING/.test(l)).at(-1) ?? e.message;
  return new BlockdiffError(`${args.slice(0, 2).join(" ")}: ${why}`);
}

export interface LogicalVolume {
  vg: string;
  lv: string;
  thin: boolean;
}

/**
 * The LV at `device` (e.g. /dev/vg0/mysql) and the LVs of its volume group (one `lvs`: each LVM command
 * costs a noticeable fraction of a second). VG and LV come from the device-mapper name the kernel gives
 * the device (`vg0-my--lv`: dashes in the names doubled), else from `lvs`.
 */
export function inspectLv(device: string): { origin: LogicalVolume; lvs: Map<string, LvInfo> } {
  const named = dmNameOf(device);
  let vg: string, lv: string;
  if (named) [vg, lv] = named;
  else {
    let out: string;
    try {
      out = lvm(["lvs", "--noheadings", "--separator", "|", "-o", "vg_name,lv_name", device]).trim();
    } catch (err) {
      throw new BlockdiffError(`${device} is not an LVM logical volume (${(err as Error).message})`);
    }
    [vg, lv] = out.split("|").map((f) => f.trim());
  }
  const lvs = vg ? listLvs(vg) : new Map<string, LvInfo>();
  const info = lvs.get(lv);
  if (!info) throw new BlockdiffError(`${device} is not an LVM logical volume`);
  return { origin: { vg, lv, thin: info.segtype === "thin" }, lvs };
}

/** [VG, LV] from the device-mapper name of `device`'s block device; null when it has none or another form. */
function dmNameOf(device: string): [string, string] | null {
  try {
    const st = fs.statSync(device);
    if (!st.isBlockDevice()) return null;
    const name = fs.readFileSync(`/sys/dev/block/${deviceNumber(st.rdev)}/dm/name`, "utf8").trim();
    const m = /^((?:[^-]|--)+)-((?:[^-]|--)+)$/.exec(name);
    return m ? [m[1].replaceAll("--", "-"), m[2].replaceAll("--", "-")] : null;
  } catch {
    return null;
  }
}

export interface LvInfo {
  name: string;
  uuid: string;
  /** The thin pool of a thin LV; "" otherwise. */
  pool: string;
  /** Thin device id in the pool (not the device minor); null for other LVs. */
  thinId: number | null;
  size: number;
  tags: string[];
  /** A thin pool's usage in percent (data, metadata); null for other LVs. */
  usage: { data: number; metadata: number } | null;
  /** LVM's segment type: "thin", "thin-pool", "linear", ... */
  segtype: string;
}

/** Every LV of `vg`, by name: one `lvs` (each LVM command costs a noticeable fraction of a second). */
export function listLvs(vg: string): Map<string, LvInfo> {
  const out = lvm([
    "lvs",
    "--noheadings",
    "--separator",
    "|",
    "--units",
    "b",
    "--nosuffix",
    "-o",
    "lv_name,lv_uuid,pool_lv,thin_id,lv_size,lv_tags,data_percent,metadata_percent,segtype",
    vg,
  ]);
  const lvs = new Map<string, LvInfo>();
  for (const line of out.split("\n").filter((l) => l.trim())) {
    const [name, uuid, pool, thinId, size, tags, data, metadata, segtype] = line.split("|").map((f) =>
      f.trim()
    );
    lvs.set(name, {
      name,
      uuid,
      pool,
      thinId: /^\d+$/.test(thinId) ? Number(thinId) : null,
      size: Number(size),
      tags: tags ? tags.split(",") : [],
      usage: segtype === "thin-pool" ? { data: Number(data), metadata: Number(metadata) } : null,
      segtype,
    });
  }
  return lvs;
}

/** Snapshots of `lv` left by earlier runs that did not remove them (crashed hosts, kill -9). */
export function staleSnapshots(lvs: Map<string, LvInfo>, lv: string): string[] {
  return [...lvs.keys()].filter((n) => n.startsWith(`${lv}-${SNAPSHOT_TAG}-`));
}

/** An active thin device's id in its pool and its size in bytes, from its device-mapper table. */
export function thinDevice(vg: string, lv: string): { thinId: number; size: number } {
  const [, sectors, target, , id] = lvm(["dmsetup", "table", dmName(vg, lv)]).trim().split(/\s+/);
  if (target !== "thin" || !/^\d+$/.test(id ?? "")) {
    throw new BlockdiffError(`${vg}/${lv} is not an active thin device`);
  }
  return { thinId: Number(id), size: Number(sectors) * 512 };
}

/** The device-mapper name of VG/LV (dashes in either doubled, as /dev/mapper shows them). */
export function dmName(vg: string, lv: string): string {
  return `${vg.replaceAll("-", "--")}-${lv.replaceAll("-", "--")}`;
}

/** A snapshot kept past the run when it succeeds: the next run's baseline (src/tracking/). */
export interface KeptSnapshot {
  name: string;
  /** Tags it is created with; while it has `pendingTag`, a dead run's watcher removes it. */
  tags: string[];
  pendingTag: string;
}

export interface SnapshotRequest {
  /** From inspectLv (done before any lock is taken). */
  origin: LogicalVolume;
  /** e.g. "10G" for a classic snapshot; ignored for a thin LV. */
  size: string;
  /** LVCREATE_PREFIX words. */
  prefix: string[];
  /** A read-only thin snapshot of this name and tags, created with activation skipped, instead of a run's own. */
  keep?: KeptSnapshot;
}

export async function createSnapshot(o: SnapshotRequest): Promise<Snapshot> {
  const { vg, lv, thin } = o.origin;
  const name = o.keep?.name ?? `${lv}-${SNAPSHOT_TAG}-${Date.now().toString(36)}-${process.pid}`;
  execFileSync("sync");
  const cmd = [
    ...o.prefix,
    "lvcreate",
    "-q",
    "-y",
    "--snapshot",
    // a thin snapshot has activation skipped; -K activates it all the same, for this run to read
    ...(thin ? ["-K"] : ["-L", o.size]),
    ...(o.keep
      ? ["--setactivationskip", "y", "--permission", "r", ...o.keep.tags.flatMap((t) => ["--addtag", t])]
      : []),
    "-n",
    name,
    `${vg}/${lv}`,
  ];
  await lvmAsync(cmd);
  const snap = { vg, name, device: `/dev/${vg}/${name}`, thin };
  guard(snap, o.keep?.pendingTag ?? null);
  return snap;
}

/** Fails if a classic snapshot ran out of space (LVM marks it invalid: its data can no longer be trusted). */
export function checkSnapshot(s: Snapshot): void {
  if (s.thin) return;
  const out = lvm([
    "lvs",
    "--noheadings",
    "--separator",
    "|",
    "-o",
    "lv_attr,snap_percent",
    `${s.vg}/${s.name}`,
  ]);
  const [attr, percent] = out.trim().split("|").map((x) => x.trim());
  if (attr[4] === "I" || Number(percent) >= 100) {
    throw new BlockdiffError(
      `snapshot ${s.vg}/${s.name} overflowed during the dump (it is invalid); use a larger --lvm-snapshot size`,
    );
  }
}

/**
 * A detached watcher that removes the snapshot once this process is gone, however it ended (SIGKILL, or the
 * SIGPIPE of a dropped connection, which the runtime does not let a handler catch). Normally this process
 * removes it first and the watcher's lvremove finds nothing. A kept snapshot (`pendingTag`) is removed only
 * while it still has that tag: the run takes it off once the snapshot is the chain's baseline.
 */
function guard(s: Snapshot, pendingTag: string | null): void {
  // A zombie still answers kill -0 (its parent may not reap it soon): it counts as gone.
  const remove = pendingTag
    ? `lvs --noheadings -o lv_tags "$2" 2>/dev/null | grep -qw "$3" && lvremove -q -f "$2" >/dev/null 2>&1`
    : 'lvremove -q -f "$2" >/dev/null 2>&1';
  const script =
    'while kill -0 "$1" 2>/dev/null && ! grep -q "^State:[[:space:]]*Z" "/proc/$1/status" 2>/dev/null; ' +
    `do sleep 0.5; done; ${remove}`;
  spawn("sh", ["-c", script, "sh", String(process.pid), `${s.vg}/${s.name}`, pendingTag ?? ""], {
    detached: true,
    stdio: "ignore",
    env: LVM_ENV,
  }).unref();
}

export function removeSnapshot(s: Snapshot): void {
  lvm(["lvremove", "-q", "-f", `${s.vg}/${s.name}`]);
}
