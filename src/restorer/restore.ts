/**
 * Restore generation K in one pass: every block from the newest generation that holds it, verified against
 * generation K's digest before it is written. A regular-file target is written under a temporary name and
 * renamed only when the whole image checked out; a block device is written in place.
 */
import { noteGarbage } from "../runtime.ts";
import { createHash, type Hash } from "node:crypto";
import { onCleanup } from "../cleanup.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import { sharedBytes } from "../io/bytes.ts";
import { describeIoError, IntegrityError } from "../errors.ts";
import { DIGEST_SIZE } from "../format/digest.ts";
import { sameDigestAt } from "../format/digest_cursor.ts";
import type { DiffReader } from "../format/diff.ts";
import { FdWritable, streamFinished, writeConsumed } from "../io/sink.ts";
import { Progress } from "../display/progress.ts";
import type { Manifest } from "../format/manifest.ts";
import type { Chain, OpenDigest } from "../store/chain.ts";
import { type ChainView, openStable, resolveGeneration } from "../store/generations.ts";
import { ChainMerger } from "./chain_merger.ts";
import { openRestoreTarget, type RestoreTarget } from "./target.ts";

export interface RestoreOptions {
  chain: Chain;
  generation?: number;
  /** A path, or `-` for stdout (restorer/target.ts says what is accepted). */
  target: string;
  /** Replace an existing regular file. */
  force: boolean;
  hasher: BlockHasher;
}

export interface RestoreSummary {
  generation: number;
  size: number;
  blocks: number;
  inPlace: boolean;
  elapsedMs: number;
}

const CHUNK_BYTES = 2 << 20;
/** Chunks in flight: one being merged, one hashed, one written. */
const SLOTS = 3;

export async function runRestore(o: RestoreOptions): Promise<RestoreSummary> {
  const { chain } = o;
  const started = Date.now();
  const { generation: gen, manifest, digest, digestSha, readers, close } = await openStable(
    chain,
    (view) => openGenerations(chain, view, o.generation),
  );
  let out: RestoreTarget | null = null;
  const unregister = onCleanup(() => out?.abort());
  try {
    out = await openRestoreTarget({
      target: o.target,
      force: o.force,
      size: manifest?.sourceSize ?? null,
      chain,
    });
    const merger = await ChainMerger.open(readers);
    const progress = new Progress(`restore ${chain.name}.${gen}`, manifest?.sourceSize ?? null);
    // in order; disk writing started on the way, fsync at the end (like backup's files)
    const sink = new FdWritable(out.fd, { sync: out.sync, hash: false });
    const synced = streamFinished(sink); // also takes the stream's errors, which the writes report
    synced.catch(() => {}); // awaited below, unless the run fails first
    let size = 0, written = 0;
    try {
      size = await restoreBlocks({
        merger,
        digest,
        hasher: o.hasher,
        write: async (bytes) => {
          await writeConsumed(sink, bytes).catch((err) => {
            throw describeIoError(`writing ${o.target}`, err);
          });
          progress.update(written += bytes.length);
        },
        mismatch: (index) =>
          `block ${index} does not match generation ${gen}'s digest: the chain is corrupt; nothing was ` +
          `${out!.inPlace ? "written past this block" : "produced"}`,
      });
    } finally {
      progress.end();
    }
    merger.checkNewestEnds(digest.blocks);
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
    sink.end();
    await synced.catch((err) => {
      throw describeIoError(`syncing ${o.target}`, err);
    });
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
  /** The diffs of the chain's members up to `generation`, oldest first. */
  readers: DiffReader[];
  close(): Promise<void>;
}

/** Generation `requested`'s digest and manifest and the diffs it is rebuilt from, opened. */
async function openGenerations(
  chain: Chain,
  view: ChainView,
  requested: number | undefined,
): Promise<OpenedGenerations> {
  const generation = resolveGeneration(chain, view, requested);
  const digestSha = createHash("sha256");
  const readers: DiffReader[] = [];
  let digest: OpenDigest | null = null;
  const close = async () => {
    for (const r of readers) await r.close().catch(() => {});
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
    for (const g of view.members.filter((g) => g <= generation)) {
      const r = await chain.openDiff(g);
      readers.push(r);
      if (r.blocksize !== bs) {
        throw new IntegrityError(`${r.what}: block size ${r.blocksize} differs from the chain's ${bs}`);
      }
    }
    return { generation, manifest, digest, digestSha, readers, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * The blocks of the restored image, in chunks through three stages that overlap: merged from the diffs
 * (this thread), hashed (the hasher's threads), verified against `digest` and written (`write`, which
 * keeps the order of its calls; each chunk only once every block of it matched). Returns the bytes written;
 * every write has finished when it returns or throws.
 */
async function restoreBlocks(o: {
  merger: ChainMerger;
  digest: OpenDigest;
  hasher: BlockHasher;
  write: (bytes: Uint8Array) => Promise<void>;
  /** The message for block `index` not matching its digest. */
  mismatch: (index: number) => string;
}): Promise<number> {
  const { merger, digest, hasher, write, mismatch } = o;
  const bs = digest.blocksize;
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
    writes = h.slot.written = write(h.slot.buf.subarray(0, h.len));
    writes.catch(() => {}); // seen by whoever awaits it next
    total += h.len;
  };
  let hashing: Hashing | null = null;
  try {
    for (let k = 0, first = 0; first < digest.blocks; k++, first += perChunk) {
      const slot = slots[k % SLOTS];
      await slot.written; // its previous chunk is written
      const count = Math.min(perChunk, digest.blocks - first);
      let len = 0;
      for (let j = 0; j < count; j++) {
        const n = await merger.block(first + j, slot.buf.subarray(j * bs));
        if (n < bs && first + j !== digest.blocks - 1) {
          throw new IntegrityError(`block ${first + j} is short (${n} bytes) but is not the last block`);
        }
        len += n;
      }
      if (hashing) await verifyAndWrite(hashing); // hashed while this chunk was merged
      hashing = { slot, first, count, len, done: hasher.hashBlocks(slot.buf, len, bs, slot.digests) };
      noteGarbage(len); // per-block records and promises of every generation: GC-lagged otherwise
    }
    if (hashing) await verifyAndWrite(hashing);
    await writes;
    return total;
  } finally {
    await writes.catch(() => {}); // no write may still run when the caller closes or removes the target
    await hashing?.done.catch(() => {}); // nor a hash, whose threads the caller may stop
  }
}
