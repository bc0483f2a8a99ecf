/**
 * LVM snapshot lifecycle on the host that holds the volume (run by the agent there): `sync`, `lvcreate
 * --snapshot` (classic with a size, thin without one; LVCREATE_PREFIX in front as in the original), a
 * unique name per run, `lvremove -f` on every path, stale snapshots of crashed runs reported, and a classic
 * snapshot that overflowed (became invalid) during the dump detected.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
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

function lvm(args: string[]): string {
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
function lvmAsync(args: string[]): Promise<string> {
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

/** Volume group, LV name and type of the LV at `device` (e.g. /dev/vg0/mysql). */
export function inspectLv(device: string): LogicalVolume {
  let out: string;
  try {
    out = lvm(["lvs", "--noheadings", "--separator", "|", "-o", "vg_name,lv_name,segtype", device]).trim();
  } catch (err) {
    throw new BlockdiffError(`${device} is not an LVM logical volume (${(err as Error).message})`);
  }
  const [vg, lv, segtype] = out.split("|").map((s) => s.trim());
  if (!vg || !lv) throw new BlockdiffError(`${device} is not an LVM logical volume`);
  return { vg, lv, thin: segtype === "thin" };
}

/** Snapshots of `lv` left by earlier runs that did not remove them (crashed hosts, kill -9). */
export function staleSnapshots(vg: string, lv: string): string[] {
  const out = lvm(["lvs", "--noheadings", "-o", "lv_name", vg]);
  return out.split("\n").map((s) => s.trim()).filter((n) => n.startsWith(`${lv}-${SNAPSHOT_TAG}-`));
}

/**
 * `origin`: from inspectLv (done before any lock is taken). `size`: e.g. "10G" for a classic snapshot;
 * ignored for a thin LV. `prefix`: LVCREATE_PREFIX words.
 */
export async function createSnapshot(
  origin: LogicalVolume,
  size: string,
  prefix: string[],
): Promise<Snapshot> {
  const { vg, lv, thin } = origin;
  const name = `${lv}-${SNAPSHOT_TAG}-${Date.now().toString(36)}-${process.pid}`;
  execFileSync("sync");
  const cmd = [
    ...prefix,
    "lvcreate",
    "-q",
    "-y",
    "--snapshot",
    ...(thin ? [] : ["-L", size]),
    "-n",
    name,
    `${vg}/${lv}`,
  ];
  await lvmAsync(cmd);
  const snap = { vg, name, device: `/dev/${vg}/${name}`, thin };
  guard(snap);
  if (thin) {
    try {
      lvm(["lvchange", "-q", "-ay", "-K", `${vg}/${name}`]);
    } catch (err) {
      removeSnapshot(snap);
      throw err;
    }
  }
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
 * removes it first and the watcher's lvremove finds nothing.
 */
function guard(s: Snapshot): void {
  // A zombie still answers kill -0 (its parent may not reap it soon): it counts as gone.
  const script =
    'while kill -0 "$1" 2>/dev/null && ! grep -q "^State:[[:space:]]*Z" "/proc/$1/status" 2>/dev/null; ' +
    'do sleep 0.5; done; lvremove -q -f "$2" >/dev/null 2>&1';
  spawn("sh", ["-c", script, "sh", String(process.pid), `${s.vg}/${s.name}`], {
    detached: true,
    stdio: "ignore",
    env: LVM_ENV,
  }).unref();
}

export function removeSnapshot(s: Snapshot): void {
  lvm(["lvremove", "-q", "-f", `${s.vg}/${s.name}`]);
}
