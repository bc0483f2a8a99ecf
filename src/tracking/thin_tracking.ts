/**
 * Change tracking for thin LVs. After a generation of a thin LV, its snapshot is kept as the chain's
 * baseline (read-only, activation skipped, named after the chain and generation, tagged). The next run
 * snapshots the volume again and asks the pool's metadata (`thin_delta`, thin_pool.ts) which pool blocks
 * differ between the baseline and the new snapshot; only the chain blocks they touch are read, the digests
 * of all others are copied from the previous digest, so the outputs are those of a full scan. Any doubt
 * means a full scan, with the reason in the manifest. Once the generation is published the new snapshot
 * becomes the baseline and the old one goes; when it is not, the new one goes.
 */
import { onCleanup } from "../cleanup.ts";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import type { BlockRange, DumpResult } from "../engine/block_loop.ts";
import type { BaselineRecord, ScanRecord } from "../format/manifest.ts";
import {
  type KeptSnapshot,
  listLvs,
  type LogicalVolume,
  type LvInfo,
  lvm,
  removeSnapshot,
  type Snapshot,
  thinDevice,
} from "../snapshot/lvm.ts";
import { type SnapshotPlan, type SnapshotQuiesce, withSnapshot } from "../snapshot/session.ts";
import { changedBlocks, parseThinDelta } from "./thin_delta.ts";
import { clearStaleReservation, thinDeltaAvailable, thinDeltaXml } from "./thin_pool.ts";

/** What the backup host tells the run about tracking (from the chain's last manifest and the options). */
export interface TrackingRequest {
  /** The chain's identity on the database host. */
  chainId: string;
  /** The generation being made. */
  generation: number;
  /** The last generation's baseline, if it kept one. */
  previous: BaselineRecord | null;
  /** Why this run scans everything although it could track (`--full-scan`...), or null. */
  forceFullScan: string | null;
  /** Also scan everything and fail if the outcomes differ (`--verify-tracking`). */
  verify: boolean;
  /** Refuse to snapshot a thin LV whose pool is fuller than this (percent, data or metadata). */
  maxPoolUsage: number;
}

/** What a dump is given: the device, and the blocks to read when tracking applies (null: all of them). */
export type TrackedDump = (
  device: string,
  tracked: { ranges: BlockRange[]; size: number } | null,
) => Promise<DumpResult & { digestSha256?: string }>;

export interface SnapshotDumpOptions {
  device: string;
  plan: SnapshotPlan;
  blocksize: number;
  log: (line: string) => void | Promise<void>;
  quiesce?: SnapshotQuiesce;
  /** Null: no change tracking (the snapshot is removed, the scan is full). */
  tracking: TrackingRequest | null;
  dump: TrackedDump;
  /** A full scan of `device` for --verify-tracking: the SHA-256 of its digest. */
  verifyScan: (device: string) => Promise<string>;
}

export interface SnapshotDump {
  result: DumpResult;
  scan: ScanRecord;
  /** The snapshot this run keeps as the next run's baseline, once settled as published. */
  baseline: BaselineRecord | null;
  /** After the commit: published, the new snapshot becomes the baseline; not, it goes. Returns log lines. */
  settle(published: boolean): string[];
}

const CHAIN_TAG = (chainId: string) => `blockdiff_chain_${chainId}`;
const PENDING_TAG = "blockdiff_pending";

export async function snapshotDump(o: SnapshotDumpOptions): Promise<SnapshotDump> {
  const t = o.tracking;
  let scan: ScanRecord | null = null, baseline: BaselineRecord | null = null;
  /** The last generation's baseline, when it was there as this run began (settle removes it). */
  let previous: string | null = null;
  const { result, kept } = await withSnapshot({
    device: o.device,
    plan: o.plan,
    log: o.log,
    quiesce: o.quiesce,
    prepare: (origin, lvs) => t && origin.thin ? prepareBaseline(origin, t, lvs) : null,
    body: async (snap, origin, lvs) => {
      if (!t || !origin.thin) {
        const r = await o.dump(snap.device, null);
        scan = {
          method: "full",
          reason: t ? "a classic (not thin) LV: no change tracking" : null,
          bytesRead: r.scanned.bytes,
        };
        return r;
      }
      const removed = removeOrphans(origin, t, lvs);
      if (removed.length) await o.log(`removed snapshots this chain no longer needs: ${removed.join(", ")}`);
      if (t.previous && lvs.has(t.previous.snapshot)) previous = t.previous.snapshot;
      const self = thinDevice(origin.vg, snap.name), source = lvs.get(origin.lv)!;
      const plan = planTracking(origin, t, lvs, self, o.blocksize);
      if (plan.reason) await o.log(`warning: full scan: ${plan.reason}`);
      const r = await o.dump(snap.device, plan.ranges ? { ranges: plan.ranges, size: self.size } : null);
      if (t.verify && plan.ranges) {
        const full = await o.verifyScan(snap.device);
        if (full !== r.digestSha256) {
          throw new IntegrityError(
            `--verify-tracking: the digest from thin_delta's blocks differs from a full scan's (${
              r.digestSha256?.slice(0, 12)
            } vs ${full.slice(0, 12)}); nothing was published`,
          );
        }
        await o.log("--verify-tracking: the full scan gave the same digest");
      }
      scan = { method: plan.ranges ? "thin_delta" : "full", reason: plan.reason, bytesRead: r.scanned.bytes };
      baseline = {
        chainId: t.chainId,
        vg: origin.vg,
        lv: origin.lv,
        originUuid: source.uuid,
        pool: source.pool,
        snapshot: snap.name,
        thinId: self.thinId,
        size: self.size,
      };
      return r;
    },
  });
  // until settled, an interrupted run removes the new snapshot (a killed one: the snapshot's watcher)
  const unregister = kept ? onCleanup(() => removeSnapshot(kept)) : () => {};
  return {
    result,
    scan: scan!,
    baseline,
    settle: (published) => {
      unregister();
      return kept ? settleBaseline(kept, published, previous) : [];
    },
  };
}

/** Before the snapshot of a thin LV: the pool must have room; the snapshot to keep. */
function prepareBaseline(origin: LogicalVolume, t: TrackingRequest, lvs: Map<string, LvInfo>): KeptSnapshot {
  const pool = lvs.get(origin.lv)?.pool ?? "";
  const use = lvs.get(pool)?.usage;
  for (const [what, pct] of use ? [["data", use.data], ["metadata", use.metadata]] as const : []) {
    if (pct > t.maxPoolUsage) {
      throw new BlockdiffError(
        `thin pool ${origin.vg}/${pool} is ${pct}% full (${what}), above ${t.maxPoolUsage}%: no snapshot taken ` +
          `(free space in the pool, or raise --thin-pool-max-usage)`,
      );
    }
  }
  return {
    name: `${origin.lv}-bdbase-${t.chainId}-${t.generation}`,
    tags: ["blockdiff", CHAIN_TAG(t.chainId), PENDING_TAG],
    pendingTag: PENDING_TAG,
  };
}

/** This chain's snapshots other than the last generation's baseline: dead runs' leftovers. */
function removeOrphans(origin: LogicalVolume, t: TrackingRequest, lvs: Map<string, LvInfo>): string[] {
  const removed: string[] = [];
  for (const lv of lvs.values()) {
    if (!lv.tags.includes(CHAIN_TAG(t.chainId)) || lv.name === t.previous?.snapshot) continue;
    removeSnapshot({ vg: origin.vg, name: lv.name, device: "", thin: true });
    removed.push(lv.name);
  }
  return removed;
}

/** The chain blocks thin_delta says may have changed, or why everything must be read. */
function planTracking(
  origin: LogicalVolume,
  t: TrackingRequest,
  lvs: Map<string, LvInfo>,
  self: { thinId: number; size: number },
  blocksize: number,
): { ranges: BlockRange[] | null; reason: string | null } {
  const full = (reason: string) => ({ ranges: null, reason });
  if (t.forceFullScan) return full(t.forceFullScan);
  const p = t.previous;
  if (!p && t.generation === 1) return { ranges: null, reason: null }; // a full backup: nothing to track
  if (!p) return full("no baseline: the chain's last generation kept no snapshot");
  if (p.vg !== origin.vg || p.lv !== origin.lv || p.chainId !== t.chainId) {
    return full(`the baseline is of ${p.vg}/${p.lv}, not ${origin.vg}/${origin.lv}`);
  }
  const base = lvs.get(p.snapshot), source = lvs.get(origin.lv)!;
  if (!base) return full(`the baseline ${p.vg}/${p.snapshot} is gone`);
  if (!base.tags.includes(CHAIN_TAG(t.chainId)) || base.thinId !== p.thinId || base.pool !== source.pool) {
    return full(`${p.vg}/${p.snapshot} is not this chain's baseline (its tags, thin id or pool differ)`);
  }
  if (source.uuid !== p.originUuid) {
    return full(`${origin.vg}/${origin.lv} is not the volume the baseline was taken of`);
  }
  if (self.size !== p.size) return full(`the volume was resized (${p.size} -> ${self.size} bytes)`);
  if (!thinDeltaAvailable()) return full("thin_delta is not installed (Debian: thin-provisioning-tools)");
  const busy = clearStaleReservation(origin.vg, source.pool, lvs.get(source.pool)?.tags ?? []);
  if (busy) return full(busy);
  try {
    const ids = { left: base.thinId!, right: self.thinId };
    const delta = parseThinDelta(thinDeltaXml(origin.vg, source.pool, ids), ids);
    return { ranges: changedBlocks(delta, blocksize, self.size), reason: null };
  } catch (err) {
    return full(`thin_delta failed: ${(err as Error).message}`);
  }
}

/**
 * Published: the new snapshot is the baseline (the pending tag off and deactivated, in one lvchange), and
 * the last generation's baseline, if it was there when the run began, goes. Not published: the new one goes.
 */
function settleBaseline(kept: Snapshot, published: boolean, previous: string | null): string[] {
  const id = `${kept.vg}/${kept.name}`;
  if (!published) {
    removeSnapshot(kept);
    return [`removed ${id}: the generation was not published`];
  }
  lvm(["lvchange", "-q", "--deltag", PENDING_TAG, "-an", id]);
  const lines = [`kept ${id} as the chain's baseline`];
  if (previous && previous !== kept.name) {
    removeSnapshot({ ...kept, name: previous });
    lines.push(`removed the previous baseline ${kept.vg}/${previous}`);
  }
  return lines;
}

/** Removes every baseline of a chain from `vg` (`blockdiff forget-baseline`); returns their names. */
export function forgetBaselines(vg: string, chainId: string): string[] {
  const gone: string[] = [];
  for (const lv of listLvs(vg).values()) {
    if (!lv.tags.includes(CHAIN_TAG(chainId))) continue;
    removeSnapshot({ vg, name: lv.name, device: "", thin: true });
    gone.push(`${vg}/${lv.name}`);
  }
  return gone;
}
