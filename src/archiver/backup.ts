/** One backup run: the next generation of a chain, published atomically, `.ver` last. */
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { onCleanup } from "../cleanup.ts";
import type { Compression } from "../compress/codec.ts";
import type { Writable } from "node:stream";
import type { DumpResult } from "../engine/block_loop.ts";
import { BlockdiffError, describeIoError } from "../errors.ts";
import {
  type BaselineRecord,
  type Manifest,
  type MysqlCoordinates,
  type ScanRecord,
} from "../format/manifest.ts";
import type { TrackingRequest } from "../tracking/thin_tracking.ts";
import type { RunLog } from "../log/run_log.ts";
import { Progress } from "../display/progress.ts";
import type { Chain, OpenDigest } from "../store/chain.ts";
import type { GenerationWriter } from "../store/writer_types.ts";
import { writersOf } from "../store/writers.ts";
import { VERSION } from "../version.ts";

/** What a Dumper gets: the previous digest, and the two files to fill (diff compressed as asked). */
export interface DumpRequest {
  blocksize: number;
  oldDigest: OpenDigest | null;
  oldDigestPath: string | null;
  diffOut: Writable;
  digestOut: Writable;
  compression: Compression;
  level: number;
  /** `total`: the source's size where a remote agent tells it (Dumper.size is null there). */
  onProgress: (bytes: number, total?: number | null) => void;
  /** Change tracking, for a dumper that snapshots a thin LV (src/tracking/). */
  tracking: TrackingRequest;
}

/** What a Dumper produced besides the two files. */
export type DumpOutcome = DumpResult & {
  mysql?: MysqlCoordinates | null;
  /** How the blocks were found (absent: a full scan of a source without change tracking). */
  scan?: ScanRecord;
  /** A snapshot kept as the next run's baseline, once settled as published. */
  baseline?: BaselineRecord | null;
  /**
   * The block size the dump used, for a dumper that does not take the requested one (another program's
   * output: archiver/command_dumper.ts, whose first generation has the block size that program chose).
   */
  blocksize?: number;
};

/** Produces a generation's diff and digest; local and remote sources implement it. */
export interface Dumper {
  /** What messages and logs call the source (as typed). */
  description: string;
  /** What the manifest records: an absolute path, or user@host[:port]:/path. */
  recorded: string;
  /** Size in bytes when known in advance (for progress). */
  size: number | null;
  /** Resolves when both outputs are completely written (and ended). */
  dump(req: DumpRequest): Promise<DumpOutcome>;
  /**
   * After the commit, whether the generation was published: a kept snapshot then becomes the baseline, or
   * goes. Called once for every dump that resolved; returns log lines. It does not fail the run.
   */
  settle?(published: boolean): Promise<string[]>;
  close(): Promise<void>;
}

/** Change tracking's options (cli/backup.ts). */
export interface TrackingOptions {
  /** --full-scan. */
  fullScan: boolean;
  /** --full-scan-every N (0: never). */
  fullScanEvery: number;
  /** --verify-tracking. */
  verify: boolean;
  /** --thin-pool-max-usage PCT. */
  maxPoolUsage: number;
}

export interface BackupOptions {
  chain: Chain;
  /** NAME.ver as read under the chain's lock (store/exclusive.ts); 0 for a new chain. */
  version: number;
  dumper: Dumper;
  compression: Compression;
  level: number;
  /** The block size rule (cli/block_size.ts), given the block size of the chain's last digest (null: none). */
  blocksize: (existing: number | null, owner: string) => number;
  /** Record an empty image although the chain's last generation had data. */
  allowShrink: boolean;
  log: RunLog;
  /** A warning worth the user's eye (on stderr as well as in the log). */
  warn: (line: string) => void;
  tracking: TrackingOptions;
}

export interface BackupSummary {
  manifest: Manifest;
  diffPath: string;
  elapsedMs: number;
}

/** The caller holds the chain's lock and has checked it (store/exclusive.ts). */
export async function runBackup(o: BackupOptions): Promise<BackupSummary> {
  const { chain, log } = o;
  const prev = o.version;
  const gen = prev + 1;
  const old = prev > 0 ? await chain.openDigest(prev) : null;
  let writer: GenerationWriter | null = null;
  let dumped = false; // a dump resolved and was not settled yet
  /** A settle that goes wrong costs the next run its baseline (a full scan), not this generation. */
  const settle = async (published: boolean) => {
    try {
      for (const line of await o.dumper.settle?.(published) ?? []) log.info(line);
    } catch (err) {
      o.warn(`change tracking: ${(err as Error).message} (the next run scans the whole volume)`);
    }
  };
  const unregister = onCleanup(() => writer?.discardNow());
  const started = new Date();
  try {
    const blocksize = o.blocksize(old?.blocksize ?? null, `chain ${chain.name}`);
    const previousManifest = prev > 0 ? chain.readManifest(prev) : null;
    const previousSize = previousManifest?.sourceSize ?? null;
    const chainId = previousManifest?.chainId ?? randomBytes(4).toString("hex");
    const every = o.tracking.fullScanEvery;
    const tracking: TrackingRequest = {
      chainId,
      generation: gen,
      previous: previousManifest?.baseline ?? null,
      forceFullScan: o.tracking.fullScan
        ? "--full-scan"
        : every > 0 && gen % every === 0
        ? `--full-scan-every ${every}: generation ${gen}`
        : null,
      verify: o.tracking.verify,
      maxPoolUsage: o.tracking.maxPoolUsage,
    };
    const refuseEmpty = () => {
      if (o.allowShrink || !old || old.blocks === 0) return;
      throw new BlockdiffError(
        `${o.dumper.description} is empty (0 bytes), but generation ${prev} of ${chain.name} holds ` +
          `${old.blocks} blocks: nothing was recorded (a wrong or unmounted source?); give --allow-shrink ` +
          `to record an empty image`,
      );
    };
    if (o.dumper.size === 0) refuseEmpty();
    writer = await writersOf(chain).newGeneration({
      generation: gen,
      previous: prev,
      compression: o.compression,
      sizeHint: o.dumper.size,
      log: (line) => line.startsWith("warning: ") ? o.warn(line.slice(9)) : log.info(line),
    });
    const { diffOut, digestOut, diffPath } = writer;
    log.info(
      `backup ${chain.name} generation ${gen} (${prev === 0 ? "full" : `incremental over ${prev}`}) ` +
        `from ${o.dumper.description}`,
    );

    const progress = new Progress(`${chain.name}.${gen}`, o.dumper.size);
    let result: DumpOutcome;
    try {
      result = await o.dumper.dump({
        blocksize,
        oldDigest: old,
        oldDigestPath: old ? chain.digestPath(prev) : null,
        diffOut,
        digestOut,
        compression: o.compression,
        level: o.level,
        onProgress: (b, total) => progress.update(b, total),
        tracking,
      });
      dumped = true;
    } catch (err) {
      await writer.discard();
      throw describeIoError(`backup of ${o.dumper.description} into ${diffPath}`, err);
    } finally {
      progress.end();
    }
    if (result.bytesRead === 0) refuseEmpty();
    if (old && (previousSize !== null ? previousSize !== result.bytesRead : old.blocks !== result.blocks)) {
      o.warn(
        `the size of ${o.dumper.description} changed since generation ${prev}: ` +
          (previousSize !== null
            ? `${previousSize} -> ${result.bytesRead} bytes`
            : `${old.blocks} -> ${result.blocks} blocks`),
      );
    }

    const manifest: Manifest = {
      format: "blockdiff-manifest/1",
      toolVersion: VERSION,
      name: chain.name,
      generation: gen,
      source: o.dumper.recorded,
      sourceSize: result.bytesRead,
      blocksize: result.blocksize ?? blocksize,
      blocks: result.blocks,
      compression: o.compression,
      compressionLevel: o.level,
      diffFile: writer.diffFile,
      digestFile: writer.digestFile,
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      blocksRead: result.scanned.blocks,
      blocksChanged: result.blocksChanged,
      bytesWritten: diffOut.bytes,
      diffSha256: diffOut.sha256!.digest("hex"),
      digestSha256: digestOut.sha256!.digest("hex"),
      mysql: result.mysql ?? null,
      scan: result.scan ?? { method: "full", reason: null, bytesRead: result.scanned.bytes },
      baseline: result.baseline ?? null,
      chainId,
    };
    await writer.publish(manifest);
    writer = null;
    dumped = false;
    await settle(true);
    log.info(
      `backup ${chain.name} generation ${gen} complete: ${result.blocksChanged}/${result.blocks} blocks changed, ` +
        `${diffOut.bytes} bytes written to ${manifest.diffFile}`,
    );
    return { manifest, diffPath, elapsedMs: Date.now() - started.getTime() };
  } catch (err) {
    await writer?.discard().catch(() => {});
    if (dumped) await settle(false);
    throw err;
  } finally {
    unregister();
    await old?.cursor.close();
    await o.dumper.close();
  }
}

/** The backup directory must exist (it is not created: a typo would otherwise start a chain somewhere). */
export function checkDirectory(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw describeIoError(`backup directory ${dir}`, err);
  }
  if (!st.isDirectory()) throw new BlockdiffError(`backup directory ${dir}: not a directory`);
}
