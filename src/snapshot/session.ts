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
  /** The work on the snapshot's device (the dump). */
  body: (snapshotDevice: string) => Promise<T>;
}

export async function withSnapshot<T>(o: SnapshotRun<T>): Promise<T> {
  const { device, plan, body } = o;
  const origin = inspectLv(device);
  const { vg, lv } = origin;
  const stale = staleSnapshots(vg, lv);
  if (stale.length) {
    await o.log(
      `stale snapshots of earlier runs on ${vg}: ${stale.join(", ")} (remove them with lvremove)`,
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
      s = snap = await createSnapshot(origin, plan.size, plan.lvcreatePrefix.split(/\s+/).filter(Boolean));
    } catch (err) {
      await release?.(false).catch(() => {});
      throw err;
    }
    await release?.(true);
    await o.log(`created ${s.thin ? "thin" : "classic"} snapshot ${s.vg}/${s.name}`);
    try {
      const result = await body(s.device);
      checkSnapshot(s);
      return result;
    } catch (err) {
      checkSnapshot(s); // reading an overflowed snapshot fails with EIO: say why
      throw err;
    }
  } finally {
    unregister();
    drop();
  }
}
