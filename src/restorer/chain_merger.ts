/**
 * One pass over a chain's generations up to K: for each block index in order, the block from the newest
 * generation that has it. Each diff is read once, sequentially; each block is yielded once.
 */
import { IntegrityError } from "../errors.ts";
import type { DiffReader, DiffRecord } from "../format/diff.ts";

export class ChainMerger {
  #current: (DiffRecord | null)[] = [];

  /** `readers[g-1]` is generation g's diff; all must share `blocksize`. */
  private constructor(private readonly readers: DiffReader[]) {}

  static async open(readers: DiffReader[]): Promise<ChainMerger> {
    const m = new ChainMerger(readers);
    for (const r of readers) m.#current.push(await r.next());
    return m;
  }

  /**
   * Copies block `index` (from the newest generation holding it) into `out` and returns its length.
   * Indices must be requested in increasing order.
   */
  async block(index: number, out: Uint8Array): Promise<number> {
    let len = -1;
    for (let g = this.readers.length - 1; g >= 0; g--) {
      let rec = this.#current[g];
      while (rec !== null && rec.index < index) rec = this.#current[g] = await this.readers[g].next();
      if (rec === null || rec.index !== index) continue;
      if (len < 0) {
        out.set(rec.data);
        len = rec.data.length;
      }
      this.#current[g] = await this.readers[g].next();
    }
    if (len < 0) {
      throw new IntegrityError(`block ${index} is in no generation of the chain (a diff is missing records)`);
    }
    return len;
  }

  /** Fails if the newest diff has records past `blocks` (it must describe exactly that many). */
  checkNewestEnds(blocks: number): void {
    const g = this.readers.length - 1;
    const rec = this.#current[g];
    if (rec !== null) {
      throw new IntegrityError(
        `${this.readers[g].what}: record for block ${rec.index} past the end (${blocks} blocks)`,
      );
    }
  }

  async close(): Promise<void> {
    for (const r of this.readers) await r.close();
  }
}
