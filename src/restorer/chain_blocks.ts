/**
 * The blocks of the restored generation in index order, each from the diff the plan (plan.ts) names. An
 * exactly planned uncompressed diff is read at the records' positions, only the surviving ones, a run of
 * consecutive records in one read with the data scattered straight into place. Any other diff is read in
 * order through its decompressor: those holding the fewest surviving blocks first, into memory (`preload`),
 * the rest as the blocks are needed, from its first surviving block to its last, so only the diffs still
 * needed hold a decompressor. Every record read is checked to be the block the plan expects; zero blocks
 * (by generation K's digest) are not read.
 */
import * as fs from "node:fs";
import { wrapReadError } from "../compress/read_errors.ts";
import { describeIoError, IntegrityError } from "../errors.ts";
import { DiffReader, type DiffRecord, RECORD_HEADER_SIZE } from "../format/diff.ts";
import { decodeBlocksize, HEADER_SIZE } from "../format/digest.ts";
import type { PageCache } from "../runtime.ts";
import { diffBytes, type OpenedDiffFile } from "../store/chain.ts";
import { exactlyPlanned, recordPosition, type RestorePlan } from "./plan.ts";

/** A member's diff file, opened (store/chain.ts): the descriptor belongs to ChainBlocks from here on. */
export type OpenedDiff = OpenedDiffFile;

interface Positioned {
  kind: "positioned";
  fd: number;
  path: string;
  size: number;
  /** Mostly not in the page cache: read without readahead, prefetched. */
  cold: boolean;
}

interface Streamed {
  kind: "streamed";
  diff: OpenedDiff;
  reader: DiffReader | null;
  /** The record the reader stands at (null: not read yet, or consumed). */
  rec: DiffRecord | null;
  last: number;
  closed: boolean;
}

/** A diff read in order whose surviving blocks were read ahead into memory (its stream then closed). */
interface Preloaded {
  kind: "preloaded";
  path: string;
  /** The blocks' indices, ascending, their bytes (`blocksize` apart) and lengths. */
  index: Float64Array;
  data: Uint8Array;
  lens: Uint32Array;
  /** The next entry to serve. */
  at: number;
}

const TWO_32 = 2 ** 32;
/** A diff with less than this share of its pages cached is read as a cold one. */
const COLD_BELOW = 0.9;
/** Read size of a diff read in order: many may be open at once (one per generation still needed). */
const STREAM_BUFFER = 64 * 1024;

export class ChainBlocks {
  readonly #sources: (Positioned | Streamed | Preloaded | null)[];
  readonly #headers: Uint8Array;
  readonly #newest: number;

  /**
   * `diffs[m]`: member m's diff, or null for a member no block comes from (then it need not be open);
   * `maxRun`: records read at once at most. A diff read at positions that is not in the page cache gets
   * no readahead from the kernel (it would read the records later generations replaced too); `prefetch`
   * asks for the records ahead instead: only the surviving ones come from the disk, many at a time.
   */
  constructor(
    private readonly plan: RestorePlan,
    diffs: (OpenedDiff | null)[],
    private readonly o: { maxRun: number; pageCache: PageCache },
  ) {
    this.#newest = diffs.length - 1;
    this.#sources = diffs.map((d, m) => {
      if (d === null) return null;
      const p = plan.members[m];
      if (d.compression === "none" && d.open === undefined) {
        const size = fs.fstatSync(d.fd).size;
        if (exactlyPlanned(p, plan.blocksize, size)) {
          checkBlocksize(d, plan.blocksize);
          const cold = (o.pageCache.cachedShare(d.fd, size) ?? 0) < COLD_BELOW;
          if (cold) o.pageCache.advise(d.fd, "random");
          return { kind: "positioned", fd: d.fd, path: d.path, size, cold };
        }
      }
      return { kind: "streamed", diff: d, reader: null, rec: null, last: p.lastSurvivor, closed: false };
    });
    this.#headers = new Uint8Array(this.o.maxRun * RECORD_HEADER_SIZE);
  }

  /** How many members are read in order (compressed, or not exactly as planned). */
  get streamedCount(): number {
    return this.#sources.filter((s) => s?.kind === "streamed").length;
  }

  /** Whether block `i` is zeros by generation K's digest (not read: `fill` gives zeros). */
  isZero(i: number): boolean {
    return this.plan.owner[i] === this.plan.zero;
  }

  /** The runs [from, to) (relative to `first`) of blocks among `first`..`first+count-1` that are not zeros. */
  dataRuns(first: number, count: number): [number, number][] {
    const runs: [number, number][] = [];
    for (let j = 0; j < count; j++) {
      if (this.isZero(first + j)) continue;
      if (runs.length && runs[runs.length - 1][1] === j) runs[runs.length - 1][1] = j + 1;
      else runs.push([j, j + 1]);
    }
    return runs;
  }

  /** Asks the kernel to start reading the positioned records of blocks `first`..`first+count-1`. */
  prefetch(first: number, count: number): void {
    const { owner, rank, blocksize: bs } = this.plan;
    for (let j = 0; j < count;) {
      const i = first + j;
      const src = this.#sources[owner[i]];
      let n = 1;
      if (src?.kind === "positioned" && src.cold) {
        while (j + n < count && owner[i + n] === owner[i] && rank[i + n] === rank[i] + n) n++;
        this.o.pageCache.advise(
          src.fd,
          "willneed",
          recordPosition(rank[i], bs),
          n * (bs + RECORD_HEADER_SIZE),
        );
      }
      j += n;
    }
  }

  /** Copies blocks `first`..`first+count-1` into `out` (block j at j * blocksize); returns the bytes. */
  async fill(first: number, count: number, out: Uint8Array): Promise<number> {
    const { owner, rank, blocksize: bs } = this.plan;
    let len = 0;
    for (let j = 0; j < count;) {
      const i = first + j;
      if (owner[i] === this.plan.zero) { // zeros by generation K's digest: nothing to read
        out.fill(0, j * bs, (j + 1) * bs);
        len += bs;
        j++;
        continue;
      }
      const src = this.#sources[owner[i]];
      if (src === null) throw new Error(`ChainBlocks: member ${owner[i]} was not opened`);
      let n = 1, got: number;
      if (src.kind === "preloaded") {
        while (src.index[src.at] < i) src.at++;
        if (src.index[src.at] !== i) throw new Error(`ChainBlocks: block ${i} was not preloaded`);
        got = src.lens[src.at];
        out.set(src.data.subarray(src.at * bs, src.at * bs + got), j * bs);
      } else if (src.kind === "positioned") {
        const limit = Math.min(count - j, this.#headers.length / RECORD_HEADER_SIZE);
        while (n < limit && owner[i + n] === owner[i] && rank[i + n] === rank[i] + n) n++;
        got = this.#readRun(src, i, n, out.subarray(j * bs));
      } else {
        got = await this.#readStreamed(src, i, out.subarray(j * bs));
      }
      len += got;
      j += n;
      if (got < n * bs && first + j !== this.plan.blocks) {
        throw new IntegrityError(`block ${first + j - 1} is short but is not the last block`);
      }
    }
    return len;
  }

  /** Records `rank[i]`.. of a positioned diff, for blocks i..i+n-1: headers checked, data into `out`. */
  #readRun(src: Positioned, i: number, n: number, out: Uint8Array): number {
    const bs = this.plan.blocksize;
    const pos = recordPosition(this.plan.rank[i], bs);
    const iov: Uint8Array[] = [];
    for (let r = 0; r < n; r++) {
      iov.push(this.#headers.subarray(r * RECORD_HEADER_SIZE, (r + 1) * RECORD_HEADER_SIZE));
      iov.push(out.subarray(r * bs, (r + 1) * bs));
    }
    let got: number;
    try {
      got = fs.readvSync(src.fd, iov, pos);
    } catch (err) {
      throw describeIoError(`reading ${src.path}`, err);
    }
    const want = Math.min(n * (bs + RECORD_HEADER_SIZE), src.size - pos);
    if (got < want) got += this.#readRest(src, iov, pos, got); // a short read: the kernel may split one
    let data = 0;
    for (let r = 0; r < n; r++) {
      const at = r * (bs + RECORD_HEADER_SIZE);
      const len = Math.min(bs, got - at - RECORD_HEADER_SIZE);
      if (len <= 0) {
        throw new IntegrityError(`${src.path}: ends before the record for block ${i + r} (truncated)`);
      }
      const h = this.#headers;
      const o = r * RECORD_HEADER_SIZE;
      const offset = ((h[o] | (h[o + 1] << 8) | (h[o + 2] << 16) | (h[o + 3] << 24)) >>> 0) +
        ((h[o + 4] | (h[o + 5] << 8) | (h[o + 6] << 16) | (h[o + 7] << 24)) >>> 0) * TWO_32;
      if (offset !== (i + r) * bs) {
        throw new IntegrityError(
          `${src.path}: record ${this.plan.rank[i] + r} is for offset ${offset}, but the digests put block ` +
            `${i + r} there (the diff does not match its digests)`,
        );
      }
      data += len;
    }
    return data;
  }

  /** Reads what a positioned read left of `iov` (from byte `done`); returns the bytes added. */
  #readRest(src: Positioned, iov: Uint8Array[], pos: number, done: number): number {
    let added = 0, skip = done;
    for (const part of iov) {
      if (skip >= part.length) {
        skip -= part.length;
        continue;
      }
      const n = fs.readSync(src.fd, part, skip, part.length - skip, pos + done + added);
      added += n;
      if (n < part.length - skip) break; // the end of the file
      skip = 0;
    }
    return added;
  }

  /** Block `i` from a diff read in order; returns its length. */
  async #readStreamed(src: Streamed, i: number, out: Uint8Array): Promise<number> {
    const { diff } = src;
    if (src.closed) throw new Error(`ChainBlocks: ${diff.path} was closed before block ${i}`);
    try {
      src.reader ??= await DiffReader.open(diffBytes(diff, () => {}, STREAM_BUFFER), diff.path);
      sameBlocksize(diff.path, src.reader.blocksize, this.plan.blocksize);
      while (src.rec === null || src.rec.index < i) {
        src.rec = await src.reader.next();
        if (src.rec === null) break;
      }
    } catch (err) {
      throw wrapReadError(diff.path, err);
    }
    if (src.rec === null || src.rec.index !== i) {
      throw new IntegrityError(`${diff.path}: holds no record for block ${i}, whose digest changed there`);
    }
    out.set(src.rec.data);
    const len = src.rec.data.length;
    if (len < this.plan.blocksize && i !== this.plan.blocks - 1) {
      throw new IntegrityError(`${diff.path}: block ${i} is short (truncated?) but is not the last block`);
    }
    if (i === src.last && this.#sources.indexOf(src) !== this.#newest) await this.#close(src);
    return len;
  }

  /**
   * Reads the surviving blocks of the diffs read in order that hold the fewest into memory, up to `budget`
   * bytes in all, and closes their streams: a decompressor stays open only for a diff that holds many blocks
   * of the image, whatever the number of generations (each open zstd stream holds ~1.5 MB).
   */
  async preload(budget: number): Promise<void> {
    const bs = this.plan.blocksize, { owner } = this.plan;
    const chosen = new Map<number, Float64Array>();
    let used = 0;
    const candidates = this.#sources.flatMap((s, m) =>
      s?.kind === "streamed" && m !== this.#newest ? [m] : []
    )
      .sort((a, b) => this.plan.members[a].survivors - this.plan.members[b].survivors);
    for (const m of candidates) {
      const n = this.plan.members[m].survivors;
      if (used + n * bs > budget) break;
      used += n * bs;
      chosen.set(m, new Float64Array(n));
    }
    if (!chosen.size) return;
    const next = new Map([...chosen.keys()].map((m) => [m, 0]));
    for (let i = 0; i < this.plan.blocks; i++) {
      const index = owner[i] === this.plan.zero ? undefined : chosen.get(owner[i]);
      if (!index) continue;
      const k = next.get(owner[i])!;
      index[k] = i;
      next.set(owner[i], k + 1);
    }
    for (const [m, index] of chosen) {
      const src = this.#sources[m] as Streamed;
      const data = new Uint8Array(index.length * bs), lens = new Uint32Array(index.length);
      for (let k = 0; k < index.length; k++) {
        lens[k] = await this.#readStreamed(src, index[k], data.subarray(k * bs));
      }
      this.#sources[m] = { kind: "preloaded", path: src.diff.path, index, data, lens, at: 0 };
    }
  }

  /** Fails if the newest diff holds records past the restored generation's last block. */
  async checkNewestEnds(): Promise<void> {
    const src = this.#sources[this.#newest];
    if (src?.kind !== "streamed" || src.reader === null) return; // positioned: its size said so
    try {
      for (let rec = src.rec; rec !== null; rec = await src.reader.next()) {
        if (rec.index >= this.plan.blocks) {
          throw new IntegrityError(
            `${src.diff.path}: record for block ${rec.index} past the end (${this.plan.blocks} blocks)`,
          );
        }
      }
    } catch (err) {
      throw wrapReadError(src.diff.path, err);
    }
  }

  async #close(src: Positioned | Streamed | Preloaded): Promise<void> {
    if (src.kind === "preloaded") return;
    if (src.kind === "positioned") return fs.closeSync(src.fd);
    if (src.closed) return;
    src.closed = true;
    if (src.reader) await src.reader.close();
    else if (src.diff.fd >= 0) fs.closeSync(src.diff.fd);
  }

  async close(): Promise<void> {
    for (const s of this.#sources) if (s) await this.#close(s).catch(() => {});
  }
}

/** A diff read at positions: its block size header (one read in order has its own, read by DiffReader). */
function checkBlocksize(d: OpenedDiff, blocksize: number): void {
  const head = new Uint8Array(HEADER_SIZE);
  sameBlocksize(
    d.path,
    decodeBlocksize(head.subarray(0, fs.readSync(d.fd, head, 0, HEADER_SIZE, 0)), d.path),
    blocksize,
  );
}

function sameBlocksize(what: string, got: number, blocksize: number): void {
  if (got !== blocksize) {
    throw new IntegrityError(`${what}: block size ${got} differs from the chain's ${blocksize}`);
  }
}
