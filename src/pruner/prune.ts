/**
 * `prune`: the retention policy decides which of the chain's generations stay (policy.ts); each removed
 * generation's blocks are folded into the next kept one (fold.ts), one kept generation at a time, each
 * fold published on its own (store/fold_commit.ts). A removed first generation makes the next kept one
 * the chain's new first (a full). Generation numbers do not change and `.ver` is not touched: the newest
 * generation is always kept. The caller holds the chain's lock and has checked the chain.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { type Compression, DEFAULT_LEVEL } from "../compress/codec.ts";
import type { Parallelism } from "../engine/parallel.ts";
import { BlockdiffError, describeIoError, IntegrityError } from "../errors.ts";
import { type Manifest, originalManifest } from "../format/manifest.ts";
import { sha256OfFile } from "../io/file_sha.ts";
import type { Chain } from "../store/chain.ts";
import { type ChainView, readChainView } from "../store/generations.ts";
import { writersOf } from "../store/writers.ts";
import { VERSION } from "../version.ts";
import { applyPolicy, type Decision, type RetentionPolicy } from "./policy.ts";
import { type FoldedDiff, writeFold } from "./fold.ts";

/** One kept generation and the removed ones (just before it) whose blocks it takes. */
export interface FoldPlan {
  into: number;
  removes: number[];
  /** `into` becomes the chain's first generation. */
  first: boolean;
  /** The inputs' diff files, in bytes: the estimate of the new diff's size. */
  inputBytes: number;
}

export interface PrunePlan {
  /** Every generation of the chain, newest first. */
  decisions: Decision[];
  /** Oldest first. */
  folds: FoldPlan[];
}

export interface PruneResult {
  plan: PrunePlan;
  /** Bytes of chain files gone, less the new diffs' growth. */
  bytesFreed: number;
}

export interface PruneOptions {
  chain: Chain;
  policy: RetentionPolicy;
  par: Parallelism;
  /** One line per fold done, for the log. */
  log: (line: string) => void;
  now?: Date;
}

/** What a prune by `policy` would do to the chain as it is now. */
export function planPrune(
  chain: Chain,
  view: ChainView,
  policy: RetentionPolicy,
  now = new Date(),
): PrunePlan {
  const dated = view.members.map((generation) => ({ generation, time: finishedAt(chain, view, generation) }));
  const decisions = applyPolicy(dated, policy, now);
  const keep = new Set(decisions.filter((d) => d.keep).map((d) => d.generation));
  const folds: FoldPlan[] = [];
  let removed: number[] = [], keptBefore = false;
  for (const g of view.members) {
    if (!keep.has(g)) {
      removed.push(g);
      continue;
    }
    if (removed.length) {
      const inputBytes = [...removed, g].reduce((n, r) => n + chain.diffSize(chain.findDiff(r)), 0);
      folds.push({ into: g, removes: removed, first: !keptBefore, inputBytes });
    }
    removed = [];
    keptBefore = true;
  }
  return { decisions, folds };
}

/** Carries a plan out (the caller holds the chain's lock); refuses first when the disk is too full. */
export async function runPrune(o: PruneOptions, plan: PrunePlan): Promise<PruneResult> {
  const { chain } = o;
  if (chain.diffsAreLocal) checkFreeSpace(chain, plan);
  const view = readChainView(chain);
  const newest = chain.findDiff(view.version);
  const compression = newest.compression;
  const level = view.manifests.get(view.version)?.compressionLevel ?? DEFAULT_LEVEL[compression];
  let bytesFreed = 0;
  for (const f of plan.folds) {
    const before = generationBytes(chain, [...f.removes, f.into]);
    const writer = await writersOf(chain).newFold({
      into: f.into,
      removes: f.removes,
      compression,
      inputBytes: f.inputBytes,
      log: o.log,
    });
    const folded = await writeFold({
      chain,
      writer,
      into: f.into,
      inputs: [...f.removes, f.into],
      first: f.first,
      compression,
      level,
      par: o.par,
    });
    try {
      const manifest = await foldedManifest(chain, readChainView(chain), f, folded, {
        compression,
        level,
        diffFile: writer.diffFile,
      });
      await writer.commit(manifest);
    } catch (err) {
      await writer.discard();
      throw err;
    }
    const freed = before - generationBytes(chain, [f.into]);
    bytesFreed += freed;
    o.log(
      `pruned generation${f.removes.length > 1 ? "s" : ""} ${f.removes.join(", ")} of ${chain.name} into ` +
        `generation ${f.into} (${folded.records} blocks in its diff now${
          f.first ? ", the chain's first" : ""
        }; ` +
        `${freed} bytes freed)`,
    );
  }
  return { plan, bytesFreed };
}

/** The manifest of the kept generation once its diff is the folded one. */
async function foldedManifest(
  chain: Chain,
  view: ChainView,
  f: FoldPlan,
  folded: FoldedDiff,
  c: { compression: Compression; level: number; diffFile: string },
): Promise<Manifest> {
  const base = view.manifests.get(f.into) ?? await originalManifestOf(chain, view, f, folded);
  const absorbed = new Set([...base.absorbed ?? [], ...f.removes]);
  for (const r of f.removes) for (const a of view.manifests.get(r)?.absorbed ?? []) absorbed.add(a);
  return {
    ...base,
    compression: c.compression,
    compressionLevel: c.level,
    diffFile: c.diffFile,
    blocksChanged: folded.records,
    bytesWritten: folded.bytes,
    diffSha256: folded.sha256,
    absorbed: [...absorbed].sort((a, b) => a - b),
    prunedAt: new Date().toISOString(),
  };
}

/** A manifest for a generation the original tools wrote (they wrote none); the fold fills in its diff. */
async function originalManifestOf(
  chain: Chain,
  view: ChainView,
  f: FoldPlan,
  folded: FoldedDiff,
): Promise<Manifest> {
  const digestPath = chain.digestPath(f.into);
  const digest = await chain.openDigest(f.into);
  await digest.cursor.close();
  const n = digest.blocks;
  return originalManifest({
    name: chain.name,
    generation: f.into,
    blocksize: digest.blocksize,
    blocks: n,
    lastBlockLength: n === 0 ? 0 : folded.lastBlockLength ?? await lastBlockLength(chain, view, f, n),
    finishedAt: fs.statSync(digestPath).mtime.toISOString(),
    digestFile: path.basename(digestPath),
    digestSha256: sha256OfFile(digestPath),
    diff: { compression: "none", bytes: 0, sha256: "", records: 0 }, // the folded diff's, in foldedManifest
    toolVersion: VERSION,
  });
}

/**
 * The length of block `n - 1` (the last) of generation `f.into` when its folded diff does not hold it:
 * the block is then unchanged since the generation kept before, in whose chain it is the newest record.
 */
async function lastBlockLength(chain: Chain, view: ChainView, f: FoldPlan, n: number): Promise<number> {
  const before = view.members.filter((g) => g < f.removes[0]).reverse();
  for (const g of before) {
    const diff = await chain.openDiff(g);
    try {
      let len: number | null = null;
      for (let rec = await diff.next(); rec !== null; rec = await diff.next()) {
        if (rec.index === n - 1) len = rec.data.length;
      }
      if (len !== null) return len;
    } finally {
      await diff.close();
    }
  }
  throw new IntegrityError(`block ${n - 1} of generation ${f.into} is in no generation of ${chain.name}`);
}

/** When generation `g`'s backup finished: its manifest's time, or its digest file's (original tools). */
function finishedAt(chain: Chain, view: ChainView, g: number): Date {
  const m = view.manifests.get(g);
  if (m) return new Date(m.finishedAt);
  try {
    return fs.statSync(chain.digestPath(g)).mtime;
  } catch (err) {
    throw describeIoError(`generation ${g}: ${chain.digestPath(g)}`, err);
  }
}

/** The largest fold's new diff must fit beside the chain (estimated by its inputs' size). */
function checkFreeSpace(chain: Chain, plan: PrunePlan): void {
  const largest = plan.folds.reduce<FoldPlan | null>(
    (a, f) => !a || f.inputBytes > a.inputBytes ? f : a,
    null,
  );
  if (!largest) return;
  let free: number;
  try {
    const s = fs.statfsSync(chain.dir);
    free = s.bavail * s.bsize;
  } catch (err) {
    throw describeIoError(`checking the free space in ${chain.dir}`, err);
  }
  if (free < largest.inputBytes) {
    throw new BlockdiffError(
      `not enough free space in ${chain.dir} to prune ${chain.name}: the new diff of generation ` +
        `${largest.into} may take up to ${largest.inputBytes} bytes, ${free} are free; nothing was changed`,
    );
  }
}

/** The bytes of generations' diffs, digests and manifests. */
function generationBytes(chain: Chain, gens: number[]): number {
  let n = 0;
  for (const g of gens) {
    try {
      n += chain.diffSize(chain.findDiff(g));
    } catch { /* gone: nothing to count */ }
    n += fileSize(chain.digestPath(g)) + fileSize(chain.manifestPath(g));
  }
  return n;
}

function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}
