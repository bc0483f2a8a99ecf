/**
 * One snapshot's life around a dump: stale snapshots of crashed runs reported, `sync`, an optional quiesce
 * (the MySQL read lock) taken just before lvcreate and released right after it, the dump of the snapshot, the
 * overflow check, and `lvremove` on every path (errors here; signals through the cleanup handlers).
 */
import { execFileSync } from "node:child_process";
import { onCleanup } from "../cleanup.ts";
import {
  checkSnapshot,
  createSnapshot,
  inspectLv,
  type KeptSnapshot,
  type LogicalVolume,
  type LvInfo,
  removeSnapshot,
  type Snapshot,
  staleSnapshots,
} from "./lvm.ts";

/** `--lvm-snapshot[=SIZE]`: classic snapshots get `size` (thin LVs need none); LVCREATE_PREFIX words. */
export interface SnapshotPlan {
  size: string;
  lvcreatePrefix: string;
}

/**
 * What holds writes still for the snapshot (the MySQL read lock): taken just before lvcreate; what it
 * returns is called right after, whether lvcreate worked or not.
 */
export type SnapshotQuiesce = () => Promise<(created: boolean) => Promise<void>>;

export interface SnapshotRun<T> {
  /** The LV to snapshot. */
  device: string;
  plan: SnapshotPlan;
  log: (line: string) => void | Promise<void>;
  quiesce?: SnapshotQuiesce;
  /**
   * Called with the origin LV before the snapshot is created (it may refuse): the snapshot to keep when the
   * run succeeds (change tracking's baseline), or null for the run's own, removed at the end.
   */
  prepare?: (origin: LogicalVolume, lvs: Map<string, LvInfo>) => KeptSnapshot | null;
  /** The work on the snapshot (the dump), with the volume group's LVs as they were before it. */
  body: (snapshot: Snapshot, origin: LogicalVolume, lvs: Map<string, LvInfo>) => Promise<T>;
}

export function lvcreatePrefixWords(plan: SnapshotPlan): string[] {
  return plan.lvcreatePrefix.split(/\s+/).filter(Boolean);
}

/** The body's result, and the snapshot when it is kept (the caller then owns it: to keep or remove). */
export async function withSnapshot<T>(o: SnapshotRun<T>): Promise<{ result: T; kept: Snapshot | null }> {
  const { device, plan, body } = o;
  const { origin, lvs } = inspectLv(device);
  const { vg, lv } = origin;
  const keep = o.prepare?.(origin, lvs) ?? null;
  const stale = staleSnapshots(lvs, lv);
  if (stale.length) {
    await o.log(
      `warning: stale snapshots of earlier runs on ${vg}: ${stale.join(", ")} (remove them with lvremove)`,
    );
  }
  let snap: Snapshot | null = null;
  const drop = () => {
    const s = snap;
    snap = null;
    if (s) removeSnapshot(s);
  };
  const unregister = onCleanup(drop);
  try {
    execFileSync("sync"); // the bulk of the flushing happens before any lock is taken
    const release = o.quiesce ? await o.quiesce() : null;
    let s: Snapshot;
    try {
      s = snap = await createSnapshot({
        origin,
        size: plan.size,
        prefix: lvcreatePrefixWords(plan),
        keep: keep ?? undefined,
      });
    } catch (err) {
      await release?.(false).catch(() => {});
      throw err;
    }
    await release?.(true);
    await o.log(`created ${s.thin ? "thin" : "classic"} snapshot ${s.vg}/${s.name}`);
    let result: T;
    try {
      result = await body(s, origin, lvs);
      checkSnapshot(s);
    } catch (err) {
      checkSnapshot(s); // reading an overflowed snapshot fails with EIO: say why
      throw err;
    }
    if (keep) snap = null; // the caller's now
    return { result, kept: keep ? s : null };
  } finally {
    unregister();
    drop();
  }
}
