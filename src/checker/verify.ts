/**
 * Checks a chain without restoring it. For each generation k: the diff parses; each of its blocks hashes
 * to digest k at that index; every block it does not hold is unchanged from digest k-1 (so restoring k
 * yields digest k); manifest fields and SHA-256 sums match the files.
 */
import { noteGarbage } from "../runtime.ts";
import { createHash } from "node:crypto";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { sameDigest } from "../format/digest_cursor.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import type { Chain, OpenDigest } from "../store/chain.ts";
import type { DiffReader } from "../format/diff.ts";

export interface GenerationCheck {
  generation: number;
  ok: boolean;
  /** "ok" details or the first problem found. */
  detail: string;
}

export async function verifyChain(
  chain: Chain,
  upTo: number | undefined,
  hasher: BlockHasher,
  onResult: (r: GenerationCheck) => void = () => {},
): Promise<GenerationCheck[]> {
  const last = chain.resolveGeneration(upTo);
  const results: GenerationCheck[] = [];
  for (let g = 1; g <= last; g++) {
    let r: GenerationCheck;
    try {
      r = { generation: g, ok: true, detail: await verifyGeneration(chain, g, hasher) };
    } catch (err) {
      if (!(err instanceof BlockdiffError)) throw err;
      r = { generation: g, ok: false, detail: err.message };
    }
    results.push(r);
    onResult(r);
  }
  return results;
}

async function verifyGeneration(chain: Chain, g: number, hasher: BlockHasher): Promise<string> {
  const manifest = chain.readManifest(g);
  const digestSha = createHash("sha256"), diffSha = createHash("sha256");
  let cur: OpenDigest | null = null, prev: OpenDigest | null = null, diff: DiffReader | null = null;
  try {
    cur = await chain.openDigest(g, (b) => digestSha.update(b));
    prev = g > 1 ? await chain.openDigest(g - 1) : null;
    diff = await chain.openDiff(g, (b) => diffSha.update(b));
    const bs = cur.blocksize;
    if (diff.blocksize !== bs) {
      throw new IntegrityError(`${diff.what}: block size ${diff.blocksize}, digest says ${bs}`);
    }
    if (prev && prev.blocksize !== bs) {
      throw new IntegrityError(`block size changed from ${prev.blocksize} (generation ${g - 1}) to ${bs}`);
    }
    const n = cur.blocks, nPrev = prev?.blocks ?? 0;
    const md5 = new Uint8Array(16);
    let next = 0, records = 0, lastLen = -1;
    const checkUnchanged = async (upTo: number) => {
      for (; next < upTo; next++) {
        const was = next < nPrev ? await prev!.cursor.get(next) : null;
        if (was === null) {
          throw new IntegrityError(`${diff!.what}: block ${next} is new but missing from the diff`);
        }
        if (!sameDigest(was, (await cur!.cursor.get(next))!)) {
          throw new IntegrityError(
            `${diff!.what}: block ${next} changed (digest differs) but is missing from the diff`,
          );
        }
      }
    };
    for (let rec = await diff.next(); rec !== null; rec = await diff.next()) {
      if (rec.index >= n) {
        throw new IntegrityError(`${diff.what}: record for block ${rec.index} past the end (${n} blocks)`);
      }
      if (rec.data.length < bs && rec.index !== n - 1) {
        throw new IntegrityError(`${diff.what}: block ${rec.index} is short but is not the last block`);
      }
      await checkUnchanged(rec.index);
      await hasher.hashBlocks(rec.data, rec.data.length, bs, md5);
      noteGarbage(rec.data.length);
      if (!sameDigest(md5, (await cur.cursor.get(rec.index))!)) {
        throw new IntegrityError(`${diff.what}: block ${rec.index} does not match its digest (corrupt data)`);
      }
      next = rec.index + 1;
      records++;
      if (rec.index === n - 1) lastLen = rec.data.length;
    }
    await checkUnchanged(n);
    await cur.cursor.drain();
    if (manifest) {
      const problems: string[] = [];
      if (manifest.blocksize !== bs) problems.push(`block size ${manifest.blocksize} vs ${bs}`);
      if (manifest.blocks !== n) problems.push(`blocks ${manifest.blocks} vs ${n}`);
      if (manifest.blocksChanged !== records) {
        problems.push(`changed blocks ${manifest.blocksChanged} vs ${records}`);
      }
      if (lastLen >= 0 && manifest.sourceSize !== (n - 1) * bs + lastLen) problems.push(`source size`);
      if (manifest.diffSha256 !== diffSha.digest("hex")) problems.push(`diff SHA-256`);
      if (manifest.digestSha256 !== digestSha.digest("hex")) problems.push(`digest SHA-256`);
      if (problems.length) {
        throw new IntegrityError(`${chain.manifestPath(g)} does not match the files: ${problems.join(", ")}`);
      }
    }
    return `${records}/${n} blocks in diff${manifest ? ", manifest matches" : ", no manifest"}`;
  } finally {
    await diff?.close().catch(() => {});
    await cur?.cursor.close();
    await prev?.cursor.close();
  }
}
