/**
 * Diff records gathered with the digests they must have, hashed together in parallel (the hasher's
 * threads) while the next batch is gathered, and compared: verify and prune check every record this way.
 */
import { noteGarbage } from "../runtime.ts";
import { IntegrityError } from "../errors.ts";
import { sameDigestAt } from "../format/digest_cursor.ts";
import { DIGEST_SIZE } from "../format/digest.ts";
import { sharedBytes } from "../io/bytes.ts";
import type { BlockHasher } from "./hasher.ts";

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

/** See the file's comment; one block at a time, verify hashed everything on one thread. */
export class RecordBatch {
  readonly #cap: number;
  readonly #slots: Batch[];
  #cur = 0;
  #pending: Promise<void> | null = null;
  /** A batch failed its check: that is the first bad record, and nothing after it is hashed. */
  #failed = false;

  constructor(
    readonly bs: number,
    private readonly hasher: BlockHasher,
    private what: string,
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

  /**
   * The same buffers for the records of another file (`what`), once `finish` returned or threw: verify
   * checks a thousand generations without a thousand pairs of shared buffers, which the worker threads
   * would keep until their own collections.
   */
  reuse(what: string): this {
    this.what = what;
    this.#cur = 0;
    this.#pending = null;
    this.#failed = false;
    for (const s of this.#slots) {
      s.index.length = 0;
      s.len = 0;
    }
    return this;
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
