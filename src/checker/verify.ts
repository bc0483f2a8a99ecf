/**
 * Checks a chain without restoring it. For each generation k: the diff parses; each of its blocks hashes
 * to digest k at that index; every block it does not hold is unchanged from digest k-1 (so restoring k
 * yields digest k); manifest fields and SHA-256 sums match the files.
 */
import { noteGarbage } from "../runtime.ts";
import { createHash } from "node:crypto";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { sameDigest, sameDigestAt } from "../format/digest_cursor.ts";
import { DIGEST_SIZE } from "../format/digest.ts";
import { sharedBytes } from "../io/bytes.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import type { Chain, OpenDigest } from "../store/chain.ts";
import type { DiffReader } from "../format/diff.ts";

export interface GenerationCheck {
  generation: number;
  ok: boolean;
  /** "ok" details or the first problem found. */
  detail: string;
}

export interface VerifyOptions {
  chain: Chain;
  /** Check generations 1..upTo (default: all). */
  upTo?: number;
  hasher: BlockHasher;
  /** Each generation's result as soon as it is known. */
  onResult?: (r: GenerationCheck) => void;
}

export async function verifyChain(o: VerifyOptions): Promise<GenerationCheck[]> {
  const { chain, hasher, onResult = () => {} } = o;
  const last = chain.resolveGeneration(o.upTo);
  const results: GenerationCheck[] = [];
  let firstBad: number | null = null;
  for (let g = 1; g <= last; g++) {
    let r: GenerationCheck;
    try {
      const detail = await verifyGeneration(chain, g, hasher);
      // its own files check out, but restoring it goes through every generation before it
      r = firstBad === null ? { generation: g, ok: true, detail } : {
        generation: g,
        ok: false,
        detail: `not restorable (depends on generation ${firstBad}); ${detail}`,
      };
    } catch (err) {
      if (!(err instanceof BlockdiffError)) throw err;
      r = { generation: g, ok: false, detail: err.message };
    }
    firstBad ??= r.ok ? null : g;
    results.push(r);
    onResult(r);
  }
  return results;
}

/** Checks generation `g`'s own files against its digest and generation g-1's; returns the "ok" details. */
export async function verifyGeneration(chain: Chain, g: number, hasher: BlockHasher): Promise<string> {
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
    const batch = new RecordBatch(bs, hasher, diff.what);
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

/** Records per batch: hashed together on the hasher's threads (2 MiB of 16 KiB blocks). */
const BATCH_BYTES = 2 << 20;

/** One batch: the records' bytes, the digests they must have, the digests they have, their block indices. */
interface Batch {
  buf: Uint8Array;
  want: Uint8Array;
  got: Uint8Array;
  index: number[];
  len: number;
}

/**
 * Diff records gathered with the digests they must have, then hashed together (in parallel) while the next
 * batch is gathered, and compared: one block at a time, verify hashed everything on one thread.
 */
class RecordBatch {
  readonly #cap: number;
  readonly #slots: Batch[];
  #cur = 0;
  #pending: Promise<void> | null = null;
  /** A batch failed its check: that is the first bad record, and nothing after it is hashed. */
  #failed = false;

  constructor(
    private readonly bs: number,
    private readonly hasher: BlockHasher,
    private readonly what: string,
  ) {
    this.#cap = Math.max(1, Math.floor(BATCH_BYTES / bs));
    this.#slots = [0, 1].map(() => ({
      buf: sharedBytes(this.#cap * bs),
      want: new Uint8Array(this.#cap * DIGEST_SIZE),
      got: sharedBytes(this.#cap * DIGEST_SIZE),
      index: [],
      len: 0,
    }));
  }

  /** Copies a record and the digest it must have; hands a full batch to the hasher. */
  async add(index: number, data: Uint8Array, want: Uint8Array): Promise<void> {
    const s = this.#slots[this.#cur];
    const j = s.index.length;
    s.buf.set(data, j * this.bs); // only the chain's last block is short, so it is also the batch's last
    s.want.set(want, j * DIGEST_SIZE);
    s.index.push(index);
    s.len = j * this.bs + data.length;
    if (s.index.length === this.#cap) await this.#flush();
  }

  /** Checks every record added; throws at the first (in order) that does not match. */
  async finish(): Promise<void> {
    if (this.#failed) return; // already thrown
    await this.#flush();
    await this.#flush();
  }

  /** Waits for the batch in flight (it throws at a mismatch), then starts hashing the current one. */
  async #flush(): Promise<void> {
    const before = this.#pending;
    this.#pending = null;
    await before?.catch((err) => {
      this.#failed = true;
      throw err;
    });
    const s = this.#slots[this.#cur];
    if (!s.index.length) return;
    this.#pending = this.hasher.hashBlocks(s.buf, s.len, this.bs, s.got).then(() => this.#compare(s));
    this.#pending.catch(() => {}); // seen by the next flush
    this.#cur ^= 1;
  }

  #compare(s: Batch): void {
    const index = s.index.splice(0);
    noteGarbage(s.len);
    for (let j = 0; j < index.length; j++) {
      if (!sameDigestAt(s.want.subarray(j * DIGEST_SIZE, (j + 1) * DIGEST_SIZE), s.got, j * DIGEST_SIZE)) {
        throw new IntegrityError(`${this.what}: block ${index[j]} does not match its digest (corrupt data)`);
      }
    }
  }
}
