/**
 * The Dumper of a local file or block device: the engine's loop, in this process. With a snapshot plan the
 * source is an LV: its snapshot is dumped (src/snapshot/session.ts), optionally under the MySQL lock.
 */
import type { Dumper, DumpRequest } from "../archiver/backup.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import type { Parallelism } from "../engine/parallel.ts";
import type { SnapshotLock } from "../mysql/snapshot_lock.ts";
import { type SnapshotPlan, withSnapshot } from "../snapshot/session.ts";
import { type OpenedSource, openLocalSource } from "./local.ts";

export interface LocalSnapshot {
  plan: SnapshotPlan;
  lock: SnapshotLock | null;
  log: (line: string) => void;
}

export async function localDumper(
  path: string,
  par: Parallelism,
  snapshot: LocalSnapshot | null = null,
): Promise<Dumper> {
  const origin = await openLocalSource(path);
  const dumpFrom = async (opened: OpenedSource, req: DumpRequest) => {
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
      });
    } finally {
      await opened.source.close();
    }
  };
  return {
    description: origin.description,
    size: origin.size,
    async dump(req) {
      if (!snapshot) return await dumpFrom(origin, req);
      await origin.source.close();
      const r = await withSnapshot(
        path,
        snapshot.plan,
        { log: snapshot.log, lock: snapshot.lock?.lock },
        async (device) => dumpFrom(await openLocalSource(device), req),
      );
      return { ...r, mysql: snapshot.lock?.coordinates() ?? null };
    },
    close: () => origin.source.close(),
  };
}
