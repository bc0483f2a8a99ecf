/** One backup run: the next generation of a chain, published atomically, `.ver` last. */
import * as fs from "node:fs";
import * as path from "node:path";
import { onCleanup } from "../cleanup.ts";
import type { Compression } from "../compress/codec.ts";
import type { Writable } from "node:stream";
import type { DumpResult } from "../engine/dump.ts";
import { BlockdiffError, describeIoError, UsageError } from "../errors.ts";
import { DEFAULT_BLOCKSIZE } from "../format/digest.ts";
import { encodeManifest, type Manifest, type MysqlCoordinates } from "../format/manifest.ts";
import { FdWritable } from "../io/sink.ts";
import type { RunLog } from "../log/cronlog.ts";
import { Progress } from "../log/progress.ts";
import type { Chain, OpenDigest } from "../store/chain.ts";
import { PendingFiles, removeLeftovers, writeVersion } from "../store/commit.ts";
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
}

/** Produces a generation's diff and digest; local and remote sources implement it. */
export interface Dumper {
  /** What the manifest and logs call the source. */
  description: string;
  /** Size in bytes when known in advance (for progress). */
  size: number | null;
  /** Resolves when both outputs are completely written (and ended). */
  dump(req: DumpRequest): Promise<DumpResult & { mysql?: MysqlCoordinates | null }>;
  close(): Promise<void>;
}

export interface BackupOptions {
  chain: Chain;
  dumper: Dumper;
  compression: Compression;
  level: number;
  /** `--block-size`: only for a new chain; must match an existing one. */
  blocksize: number | null;
  log: RunLog;
}

export interface BackupSummary {
  manifest: Manifest;
  diffPath: string;
  elapsedMs: number;
}

export async function runBackup(o: BackupOptions): Promise<BackupSummary> {
  const { chain, log } = o;
  checkDirectory(chain.dir);
  const prev = chain.readVersion();
  const gen = prev + 1;
  for (const p of removeLeftovers(chain, gen)) log.info(`removed leftover of an incomplete run: ${p}`);

  const old = prev > 0 ? await chain.openDigest(prev) : null;
  const pending = new PendingFiles();
  const unregister = onCleanup(() => pending.discard());
  const started = new Date();
  try {
    const blocksize = old?.blocksize ?? o.blocksize ?? DEFAULT_BLOCKSIZE;
    if (old && o.blocksize !== null && o.blocksize !== old.blocksize) {
      throw new UsageError(
        `--block-size ${o.blocksize} conflicts with chain ${chain.name}, whose block size is ${old.blocksize} ` +
          `(from ${chain.digestPath(prev)}); start a new chain to change it`,
      );
    }
    const diffPath = chain.diffPath(gen, o.compression);
    const digestPath = chain.digestPath(gen);
    const diffOut = new FdWritable(pending.create(diffPath), { sync: true });
    const digestOut = new FdWritable(pending.create(digestPath), { sync: true });
    log.info(
      `backup ${chain.name} generation ${gen} (${prev === 0 ? "full" : `incremental over ${prev}`}) ` +
        `from ${o.dumper.description}`,
    );

    const progress = new Progress(`${chain.name}.${gen}`, o.dumper.size);
    let result;
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
      });
    } catch (err) {
      diffOut.destroy();
      digestOut.destroy();
      throw describeIoError(`backup of ${o.dumper.description} into ${diffPath}`, err);
    } finally {
      progress.end();
    }

    const manifest: Manifest = {
      format: "blockdiff-manifest/1",
      toolVersion: VERSION,
      name: chain.name,
      generation: gen,
      source: o.dumper.description,
      sourceSize: result.bytesRead,
      blocksize,
      blocks: result.blocks,
      compression: o.compression,
      compressionLevel: o.level,
      diffFile: path.basename(diffPath),
      digestFile: path.basename(digestPath),
      startedAt: started.toISOString(),
      finishedAt: new Date().toISOString(),
      blocksRead: result.blocks,
      blocksChanged: result.blocksChanged,
      bytesWritten: diffOut.bytes,
      diffSha256: diffOut.sha256!.digest("hex"),
      digestSha256: digestOut.sha256!.digest("hex"),
      mysql: result.mysql ?? null,
    };
    pending.writeFile(chain.manifestPath(gen), encodeManifest(manifest));
    pending.publish();
    writeVersion(chain, gen);
    log.info(
      `backup ${chain.name} generation ${gen} complete: ${result.blocksChanged}/${result.blocks} blocks changed, ` +
        `${diffOut.bytes} bytes written to ${path.basename(diffPath)}`,
    );
    return { manifest, diffPath, elapsedMs: Date.now() - started.getTime() };
  } catch (err) {
    pending.discard();
    log.info(`backup ${chain.name} generation ${gen} FAILED: ${(err as Error).message}`);
    throw err;
  } finally {
    unregister();
    await old?.cursor.close();
    await o.dumper.close();
  }
}

function checkDirectory(dir: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    throw describeIoError(`backup directory ${dir}`, err);
  }
  if (!st.isDirectory()) throw new BlockdiffError(`backup directory ${dir}: not a directory`);
}
