/**
 * Checks a chain without restoring it. For each generation k of the chain: the diff parses; each of its
 * blocks hashes to digest k at that index; every block it does not hold is unchanged from the digest of the
 * chain's generation before k (k-1 unless a prune removed it), so restoring k yields digest k; manifest
 * fields and SHA-256 sums match the files.
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { Progress } from "../display/progress.ts";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { sameDigest } from "../format/digest_cursor.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import { RecordBatch } from "../engine/record_batch.ts";
import type { Manifest } from "../format/manifest.ts";
import type { Chain, OpenDigest } from "../store/chain.ts";
import type { DiffReader } from "../format/diff.ts";
import { openStable, previousMember, readChainView, resolveGeneration } from "../store/generations.ts";
import { foldInProgress } from "../store/journal_record.ts";

export interface GenerationCheck {
  generation: number;
  ok: boolean;
  /** "ok" details or the first problem found. */
  detail: string;
}

export interface VerifyOptions {
  chain: Chain;
  /** Check the generations up to this one (default: all). */
  upTo?: number;
  hasher: BlockHasher;
  /** Each generation's result as soon as it is known. */
  onResult?: (r: GenerationCheck) => void;
}

export async function verifyChain(o: VerifyOptions): Promise<GenerationCheck[]> {
  const { chain, hasher, onResult = () => {} } = o;
  const view = readChainView(chain);
  const last = resolveGeneration(chain, view, o.upTo);
  const results: GenerationCheck[] = [];
  let firstBad: number | null = null;
  const members = view.members.filter((g) => g <= last);
  const progress = new Progress(`verify ${chain.name}`, diffBytes(chain, members));
  let read = 0;
  const batches = new Map<number, RecordBatch>(); // by block size
  const counted = (b: Uint8Array) => progress.update(read += b.length);
  for (const g of members) {
    let r: GenerationCheck;
    try {
      const files = await openStable(chain, (now) => {
        if (!now.members.includes(g)) throw new PrunedMeanwhile(now.absorbedBy.get(g));
        return openCheckFiles(chain, g, previousMember(now, g), counted);
      });
      const detail = await checkGeneration(files, hasher, batches);
      // its own files check out, but restoring it goes through every generation before it
      r = firstBad === null ? { generation: g, ok: true, detail } : {
        generation: g,
        ok: false,
        detail: `not restorable (depends on generation ${firstBad}); ${detail}`,
      };
    } catch (err) {
      if (err instanceof PrunedMeanwhile) {
        r = { generation: g, ok: true, detail: err.message };
        results.push(r);
        progress.end();
        onResult(r);
        continue;
      }
      if (!(err instanceof BlockdiffError)) throw err;
      r = { generation: g, ok: false, detail: err.message };
    }
    firstBad ??= r.ok ? null : g;
    results.push(r);
    progress.end(); // the line is drawn again on the next update
    onResult(r);
  }
  progress.end();
  return results;
}

/** The bytes of the members' diff files, for the progress line (null when one cannot be found). */
function diffBytes(chain: Chain, members: number[]): number | null {
  try {
    return members.reduce((n, g) => n + fs.statSync(chain.findDiff(g).path).size, 0);
  } catch {
    return null;
  }
}

/** A prune removed the generation while verify ran: nothing to check any more. */
class PrunedMeanwhile extends Error {
  constructor(holder: number | undefined) {
    super(`removed by a prune while verify ran${holder ? ` (its blocks are in generation ${holder})` : ""}`);
  }
}

/**
 * Checks generation `g`'s own files against its digest and those of `previous` (the chain's member before
 * it; null when it is the first), for a caller that holds the chain's lock; returns the "ok" details.
 */
export async function verifyGeneration(
  chain: Chain,
  g: number,
  previous: number | null,
  hasher: BlockHasher,
): Promise<string> {
  return checkGeneration(await openCheckFiles(chain, g, previous), hasher);
}

interface CheckFiles {
  generation: number;
  what: string;
  manifest: Manifest | null;
  /** What a prune in progress is turning the manifest into (its new diff may already be in place). */
  folding: Manifest | null;
  cur: OpenDigest;
  prev: OpenDigest | null;
  previous: number | null;
  diff: DiffReader;
  digestSha: Hash;
  diffSha: Hash;
  close(): Promise<void>;
}

async function openCheckFiles(
  chain: Chain,
  g: number,
  previous: number | null,
  onRaw: (b: Uint8Array) => void = () => {},
): Promise<CheckFiles> {
  const digestSha = createHash("sha256"), diffSha = createHash("sha256");
  let cur: OpenDigest | null = null, prev: OpenDigest | null = null, diff: DiffReader | null = null;
  const close = async () => {
    await diff?.close().catch(() => {});
    await cur?.cursor.close();
    await prev?.cursor.close();
  };
  try {
    const manifest = chain.readManifest(g);
    cur = await chain.openDigest(g, (b) => digestSha.update(b));
    prev = previous !== null ? await chain.openDigest(previous) : null;
    diff = await chain.openDiff(g, (b) => {
      diffSha.update(b);
      onRaw(b);
    });
    const fold = foldInProgress(chain); // read after the diff was opened: see checkGeneration
    return {
      generation: g,
      what: chain.manifestPath(g),
      manifest,
      folding: fold?.generation === g ? fold.manifest : null,
      cur,
      prev,
      previous,
      diff,
      digestSha,
      diffSha,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

async function checkGeneration(
  f: CheckFiles,
  hasher: BlockHasher,
  batches = new Map<number, RecordBatch>(),
): Promise<string> {
  const { cur, prev, diff } = f;
  try {
    const bs = cur.blocksize;
    if (diff.blocksize !== bs) {
      throw new IntegrityError(`${diff.what}: block size ${diff.blocksize}, digest says ${bs}`);
    }
    if (prev && prev.blocksize !== bs) {
      throw new IntegrityError(
        `block size changed from ${prev.blocksize} (generation ${f.previous}) to ${bs}`,
      );
    }
    const n = cur.blocks, nPrev = prev?.blocks ?? 0;
    const batch = batches.get(bs)?.reuse(diff.what) ?? new RecordBatch(bs, hasher, diff.what);
    batches.set(bs, batch);
    let next = 0, records = 0, lastLen = -1;
    const checkUnchanged = async (upTo: number) => {
      for (; next < upTo; next++) {
        const was = next < nPrev ? await prev!.cursor.get(next) : null;
        if (was === null) {
          throw new IntegrityError(`${diff.what}: block ${next} is new but missing from the diff`);
        }
        if (!sameDigest(was, (await cur.cursor.get(next))!)) {
          throw new IntegrityError(
            `${diff.what}: block ${next} changed (digest differs) but is missing from the diff`,
          );
        }
      }
    };
    try {
      for (let rec = await diff.next(); rec !== null; rec = await diff.next()) {
        if (rec.index >= n) {
          throw new IntegrityError(`${diff.what}: record for block ${rec.index} past the end (${n} blocks)`);
        }
        if (rec.data.length < bs && rec.index !== n - 1) {
          throw new IntegrityError(`${diff.what}: block ${rec.index} is short but is not the last block`);
        }
        await checkUnchanged(rec.index);
        await batch.add(rec.index, rec.data, (await cur.cursor.get(rec.index))!);
        next = rec.index + 1;
        records++;
        if (rec.index === n - 1) lastLen = rec.data.length;
      }
      await checkUnchanged(n);
    } finally {
      await batch.finish(); // a bad record before a problem found above is reported first
    }
    await cur.cursor.drain();
    const diffSha = f.diffSha.digest("hex"), digestSha = f.digestSha.digest("hex");
    // the diff a prune in progress renamed into place before its manifest: the journal's manifest holds
    const manifest = f.manifest && f.folding?.diffSha256 === diffSha && f.manifest.diffSha256 !== diffSha
      ? f.folding
      : f.manifest;
    if (manifest) {
      const problems: string[] = [];
      if (manifest.blocksize !== bs) problems.push(`block size ${manifest.blocksize} vs ${bs}`);
      if (manifest.blocks !== n) problems.push(`blocks ${manifest.blocks} vs ${n}`);
      if (manifest.blocksChanged !== records) {
        problems.push(`changed blocks ${manifest.blocksChanged} vs ${records}`);
      }
      if (lastLen >= 0 && manifest.sourceSize !== (n - 1) * bs + lastLen) problems.push(`source size`);
      if (manifest.diffSha256 !== diffSha) problems.push(`diff SHA-256`);
      if (manifest.digestSha256 !== digestSha) problems.push(`digest SHA-256`);
      if (problems.length) {
        throw new IntegrityError(`${f.what} does not match the files: ${problems.join(", ")}`);
      }
    }
    return `${records}/${n} blocks in diff${manifest ? ", manifest matches" : ", no manifest"}`;
  } finally {
    await f.close();
  }
}
