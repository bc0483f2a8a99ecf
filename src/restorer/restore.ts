/**
 * Restore generation K in one pass: every block read once, from the newest generation that holds it (the
 * plan, from the digests: plan.ts), verified against generation K's digest before it is written. A
 * regular-file target is written under a temporary name and renamed only when the whole image checked out
 * (zero blocks left as holes unless told otherwise); a block device is written in place.
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { onCleanup } from "../cleanup.ts";
import { pageCache } from "../runtime.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import type { RunWriter } from "../engine/parallel.ts";
import { sharedBytes } from "../io/bytes.ts";
import { IntegrityError } from "../errors.ts";
import { DIGEST_SIZE } from "../format/digest.ts";
import { sameDigestAt } from "../format/digest_cursor.ts";
import { Progress } from "../display/progress.ts";
import type { Manifest } from "../format/manifest.ts";
import type { Chain, OpenDigest } from "../store/chain.ts";
import { type ChainView, openStable, resolveGeneration } from "../store/generations.ts";
import { ChainBlocks, type OpenedDiff } from "./chain_blocks.ts";
import { ImageWriter } from "./image_writer.ts";
import { planRestore } from "./plan.ts";
import { openRestoreTarget, type RestoreTarget } from "./target.ts";

export interface RestoreOptions {
  chain: Chain;
  generation?: number;
  /** A path, or `-` for stdout (restorer/target.ts says what is accepted). */
  target: string;
  /** Replace an existing regular file. */
  force: boolean;
  /** A new file leaves zero blocks as holes (`--no-sparse`: written). */
  sparse: boolean;
  hasher: BlockHasher;
  /** Where the image's chunks are written from (a worker). */
  writeRuns: RunWriter;
}

export interface RestoreSummary {
  generation: number;
  size: number;
  blocks: number;
  inPlace: boolean;
  elapsedMs: number;
}

const CHUNK_BYTES = 2 << 20;
/** Chunks in flight: one being read, one hashed, one written. */
const SLOTS = 3;
/** Surviving blocks of compressed diffs read into memory first, so that their streams close (chain_blocks.ts). */
const PRELOAD_BYTES = 32 << 20;
/** How many chunks ahead of the one being read the kernel is asked to read (16 MiB). */
const PREFETCH = 8;

export async function runRestore(o: RestoreOptions): Promise<RestoreSummary> {
  const { chain } = o;
  const started = Date.now();
  const { generation: gen, manifest, digest, digestSha, blocks, close } = await openStable(
    chain,
    (view) => openGenerations(chain, view, o.generation),
  );
  let out: RestoreTarget | null = null;
  let writer: ImageWriter | null = null;
  const unregister = onCleanup(() => out?.abort());
  try {
    out = await openRestoreTarget({
      target: o.target,
      force: o.force,
      size: manifest?.sourceSize ?? null,
      chain,
    });
    if (!o.sparse) out.holes = false;
    writer = new ImageWriter(out, o.target, o.writeRuns);
    const progress = new Progress(`restore ${chain.name}.${gen}`, manifest?.sourceSize ?? null);
    let size = 0, written = 0;
    try {
      size = await restoreBlocks({
        blocks,
        digest,
        hasher: o.hasher,
        write: async (bytes, position, runs) => {
          await writer!.write(bytes, position, { blocksize: digest.blocksize, runs });
          progress.update(written += bytes.length);
        },
        mismatch: (index) =>
          `block ${index} does not match generation ${gen}'s digest: the chain is corrupt; nothing was ` +
          `${out!.inPlace ? "written past this block" : "produced"}`,
      });
    } finally {
      progress.end();
    }
    await blocks.checkNewestEnds();
    await digest.cursor.drain();
    if (manifest) {
      if (manifest.sourceSize !== size) {
        throw new IntegrityError(
          `restored ${size} bytes but ${chain.manifestPath(gen)} records ${manifest.sourceSize}`,
        );
      }
      if (manifest.digestSha256 !== digestSha.digest("hex")) {
        throw new IntegrityError(`${chain.digestPath(gen)}: SHA-256 differs from its manifest`);
      }
    }
    await writer.finish();
    out.finish();
    const inPlace = out.inPlace;
    out = null;
    return {
      generation: gen,
      size,
      blocks: digest.blocks,
      inPlace,
      elapsedMs: Date.now() - started,
    };
  } catch (err) {
    await writer?.settle(); // no write may still run when the target is closed or removed
    out?.abort();
    throw err;
  } finally {
    unregister();
    await close();
  }
}

interface OpenedGenerations {
  generation: number;
  manifest: Manifest | null;
  digest: OpenDigest;
  /** Of the digest file's bytes, as they are read. */
  digestSha: Hash;
  /** The blocks of the image, from the diffs of the chain's members up to `generation`. */
  blocks: ChainBlocks;
  close(): Promise<void>;
}

/**
 * Generation `requested`'s digest and manifest, the plan of where each block comes from (restorer/plan.ts),
 * and the diffs it names, opened: only those that hold a block of the image.
 */
async function openGenerations(
  chain: Chain,
  view: ChainView,
  requested: number | undefined,
): Promise<OpenedGenerations> {
  const generation = resolveGeneration(chain, view, requested);
  const digestSha = createHash("sha256");
  const diffs: (OpenedDiff | null)[] = [];
  let digest: OpenDigest | null = null;
  let blocks: ChainBlocks | null = null;
  const close = async () => {
    if (blocks) await blocks.close();
    else for (const d of diffs) if (d && d.fd >= 0) fs.closeSync(d.fd);
    await digest?.cursor.close();
  };
  try {
    const manifest = chain.readManifest(generation);
    digest = await chain.openDigest(generation, (b) => digestSha.update(b));
    const bs = digest.blocksize;
    if (manifest && (manifest.blocksize !== bs || manifest.blocks !== digest.blocks)) {
      throw new IntegrityError(
        `${chain.manifestPath(generation)}: says ${manifest.blocks} blocks of ${manifest.blocksize} bytes, ` +
          `the digest file has ${digest.blocks} of ${bs}`,
      );
    }
    const members = view.members.filter((g) => g <= generation);
    const plan = planRestore(members.map((g) => ({ generation: g, digestPath: chain.digestPath(g) })), bs);
    for (const [m, g] of members.entries()) {
      if (plan.members[m].survivors === 0) {
        diffs.push(null);
        continue;
      }
      diffs.push(chain.openDiffFile(g));
    }
    blocks = new ChainBlocks(plan, diffs, {
      maxRun: Math.max(1, Math.floor(CHUNK_BYTES / bs)),
      pageCache: await pageCache(),
    });
    await blocks.preload(PRELOAD_BYTES);
    return { generation, manifest, digest, digestSha, blocks, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The blocks of the restored image, in chunks through three stages that overlap: read from the diffs
 * (this thread), hashed (the hasher's threads), verified against `digest` and written (`write`, which
 * keeps the order of its calls; each chunk only once every block of it matched). Returns the bytes written;
 * every write has finished when it returns or throws.
 */
async function restoreBlocks(o: {
  blocks: ChainBlocks;
  digest: OpenDigest;
  hasher: BlockHasher;
  /** Writes a chunk at `position`; `runs`: its blocks [from, to) that are not zeros (ChainBlocks.dataRuns). */
  write: (bytes: Uint8Array, position: number, runs: [number, number][]) => Promise<void>;
  /** The message for block `index` not matching its digest. */
  mismatch: (index: number) => string;
}): Promise<number> {
  const { blocks, digest, hasher, write, mismatch } = o;
  const bs = digest.blocksize;
  const zeroDigest = createHash("md5").update(new Uint8Array(bs)).digest();
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / bs));
  const slots = Array.from({ length: SLOTS }, () => ({
    buf: sharedBytes(perChunk * bs),
    digests: sharedBytes(perChunk * DIGEST_SIZE),
    written: Promise.resolve(),
  }));
  let writes = Promise.resolve();
  let total = 0;
  type Hashing = {
    slot: typeof slots[number];
    first: number;
    count: number;
    len: number;
    runs: [number, number][];
    done: Promise<void>;
  };
  const verifyAndWrite = async (h: Hashing) => {
    await h.done;
    for (let j = 0; j < h.count; j++) {
      const want = await digest.cursor.get(h.first + j);
      if (want === null || !sameDigestAt(want, h.slot.digests, j * DIGEST_SIZE)) {
        throw new IntegrityError(mismatch(h.first + j));
      }
    }
    writes = h.slot.written = write(h.slot.buf.subarray(0, h.len), h.first * bs, h.runs);
    writes.catch(() => {}); // seen by whoever awaits it next
    total += h.len;
  };
  let hashing: Hashing | null = null;
  let prefetched = 0;
  try {
    for (let k = 0, first = 0; first < digest.blocks; k++, first += perChunk) {
      const slot = slots[k % SLOTS];
      await slot.written; // its previous chunk is written
      const count = Math.min(perChunk, digest.blocks - first);
      // the disk reads the chunks ahead meanwhile (from a cold chain: each record read is then a copy)
      const ahead = Math.min(digest.blocks, first + (PREFETCH + 1) * perChunk);
      if (prefetched < ahead) blocks.prefetch(prefetched, ahead - prefetched);
      prefetched = ahead;
      const len = await blocks.fill(first, count, slot.buf);
      // blocks of zeros by generation K's digest (a sparse volume's empty space) were not read: nor are they
      // hashed, their digest is known; the runs of other blocks are
      const runs = blocks.dataRuns(first, count);
      for (let j = 0; j < count; j++) {
        if (blocks.isZero(first + j)) slot.digests.set(zeroDigest, j * DIGEST_SIZE);
      }
      const done = Promise.all(
        runs.map(([a, b]) =>
          hasher.hashBlocks(
            slot.buf.subarray(a * bs),
            Math.min(b * bs, len) - a * bs,
            bs,
            slot.digests.subarray(a * DIGEST_SIZE),
          )
        ),
      ).then(() => {});
      done.catch(() => {}); // seen when this chunk is verified: a failure meanwhile is not unhandled
      if (hashing) await verifyAndWrite(hashing); // hashed while this chunk was read
      hashing = { slot, first, count, len, runs, done };
    }
    if (hashing) await verifyAndWrite(hashing);
    await writes;
    return total;
  } finally {
    await writes.catch(() => {}); // no write may still run when the caller closes or removes the target
    await hashing?.done.catch(() => {}); // nor a hash, whose threads the caller may stop
  }
}
