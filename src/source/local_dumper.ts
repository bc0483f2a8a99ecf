/**
 * The Dumper of a local file or block device: the engine's loop, in this process. With a snapshot plan the
 * source is an LV: its snapshot is dumped (src/tracking/thin_tracking.ts: with change tracking for a thin
 * LV), optionally with the MySQL read lock held, or the user's wrapper run, while it is created.
 */
import * as nodePath from "node:path";
import type { Dumper, DumpOutcome, DumpRequest } from "../archiver/backup.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import type { Parallelism } from "../engine/parallel.ts";
import type { MysqlQuiesce } from "../mysql/quiesce.ts";
import type { SnapshotPlan, SnapshotQuiesce } from "../snapshot/session.ts";
import { type SnapshotDump, snapshotDump } from "../tracking/thin_tracking.ts";
import { digestScanOf, type OpenedSource, openLocalSource } from "./local.ts";

export interface LocalSnapshot {
  plan: SnapshotPlan;
  mysql: MysqlQuiesce | null;
  /** `--snapshot-wrapper` (not together with `mysql`). */
  wrapper: SnapshotQuiesce | null;
  /** Change tracking of a thin LV (backup: its snapshot kept as the chain's baseline); false: none (dump). */
  tracking: boolean;
  log: (line: string) => void;
}

export interface LocalDumperOptions {
  path: string;
  par: Parallelism;
  /** `--lvm-snapshot`: PATH is an LV; its snapshot is dumped. */
  snapshot: LocalSnapshot | null;
}

export async function localDumper(o: LocalDumperOptions): Promise<Dumper> {
  const { path, par, snapshot } = o;
  const origin = await openLocalSource(path);
  const dumpFrom = async (
    opened: OpenedSource,
    req: DumpRequest,
    tracked: { ranges: { start: number; end: number }[]; size: number } | null = null,
  ) => {
    try {
      return await dumpToStreams({
        source: opened.source,
        blocksize: req.blocksize,
        oldDigest: req.oldDigest?.cursor ?? null,
        par,
        diffOut: req.diffOut,
        digestOut: req.digestOut,
        compression: req.compression,
        level: req.level,
        onProgress: req.onProgress,
        tracked: tracked
          ? { ...tracked, readAt: (b, len, pos) => opened.source.readAt(b, len, pos) }
          : undefined,
        digestSha256: req.tracking.verify,
      });
    } finally {
      await opened.source.close();
    }
  };
  let snap: SnapshotDump | null = null;
  return {
    description: origin.description,
    recorded: nodePath.resolve(origin.description),
    size: origin.size,
    async dump(req): Promise<DumpOutcome> {
      if (!snapshot) return await dumpFrom(origin, req);
      await origin.source.close();
      snap = await snapshotDump({
        device: path,
        plan: snapshot.plan,
        blocksize: req.blocksize,
        log: snapshot.log,
        quiesce: snapshot.mysql?.quiesce ?? snapshot.wrapper ?? undefined,
        tracking: snapshot.tracking ? req.tracking : null,
        dump: async (device, tracked) => dumpFrom(await openLocalSource(device), req, tracked),
        verifyScan: (device) => digestScanOf(device, { blocksize: req.blocksize, par }),
      });
      return {
        ...snap.result,
        scan: snap.scan,
        baseline: snap.baseline,
        mysql: snapshot.mysql?.coordinates() ?? null,
      };
    },
    settle: (published) => Promise.resolve(snap?.settle(published) ?? []),
    close: () => origin.source.close(),
  };
}
