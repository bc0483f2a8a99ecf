/**
 * The Dumper of a local file or block device: the engine's loop, in this process. With a snapshot plan the
 * source is an LV: its snapshot is dumped (src/snapshot/session.ts), optionally with the MySQL read lock
 * held while it is created.
 */
import type { Dumper, DumpRequest } from "../archiver/backup.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import type { Parallelism } from "../engine/parallel.ts";
import type { MysqlQuiesce } from "../mysql/quiesce.ts";
import { type SnapshotPlan, withSnapshot } from "../snapshot/session.ts";
import { type OpenedSource, openLocalSource } from "./local.ts";

export interface LocalSnapshot {
  plan: SnapshotPlan;
  mysql: MysqlQuiesce | null;
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
      const r = await withSnapshot({
        device: path,
        plan: snapshot.plan,
        log: snapshot.log,
        quiesce: snapshot.mysql?.quiesce,
        body: async (device) => dumpFrom(await openLocalSource(device), req),
      });
      return { ...r, mysql: snapshot.mysql?.coordinates() ?? null };
    },
    close: () => origin.source.close(),
  };
}
