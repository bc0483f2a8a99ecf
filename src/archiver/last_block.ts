/**
 * The length of a chain's last block where a new generation's diff does not hold it (it is unchanged): the
 * same as in the generation before, which its manifest tells, else the newest diff that holds the block
 * (chains of the original tools have no manifests). An uncompressed diff says it from its size and its
 * last record's header; a compressed one is read through. The source's size is then known to the byte,
 * as `restore` checks it.
 */
import * as fs from "node:fs";
import { IntegrityError } from "../errors.ts";
import { RECORD_HEADER_SIZE } from "../format/diff.ts";
import { digestBlockCount, HEADER_SIZE } from "../format/digest.ts";
import type { Chain } from "../store/chain.ts";
import { type ChainView, previousMember } from "../store/generations.ts";

export interface LastBlockQuery {
  chain: Chain;
  view: ChainView;
  /** The newest generation whose block `n - 1` is the one wanted (unchanged since). */
  from: number;
  /** The new generation's blocks and block size. */
  n: number;
  bs: number;
}

export async function lastBlockLength(q: LastBlockQuery): Promise<number> {
  const { chain, view, n, bs } = q;
  for (let g: number | null = q.from; g !== null; g = previousMember(view, g)) {
    const blocks = digestBlocks(chain, g);
    if (blocks > n) return bs; // block n - 1 was not this generation's last: a whole block
    if (blocks < n) break; // it had no block n - 1 to be unchanged from
    const m = view.manifests.get(g);
    const fromManifest = m && m.blocks === n && m.blocksize === bs ? m.sourceSize - (n - 1) * bs : 0;
    if (fromManifest >= 1 && fromManifest <= bs) return fromManifest;
    const held = await heldLength(chain, g, n - 1, bs);
    if (held !== null) return held;
  }
  throw new IntegrityError(
    `block ${n - 1} of ${chain.name} is in no generation's diff up to ${q.from} (the chain is broken)`,
  );
}

function digestBlocks(chain: Chain, g: number): number {
  const p = chain.digestPath(g);
  let size: number;
  try {
    size = fs.statSync(p).size;
  } catch {
    throw new IntegrityError(`digest file ${p} is missing (the chain is broken)`);
  }
  return digestBlockCount(size, p);
}

/** The length of block `index` in generation `g`'s diff, or null when the diff does not hold it. */
async function heldLength(chain: Chain, g: number, index: number, bs: number): Promise<number | null> {
  const f = chain.openDiffFile(g);
  if (f.compression === "none") {
    try {
      const quick = lastRecordOf(f.fd, bs);
      if (quick !== undefined) return quick?.index === index ? quick.length : null;
    } finally {
      fs.closeSync(f.fd);
    }
  } else fs.closeSync(f.fd);
  const diff = await chain.openDiff(g);
  try {
    let len: number | null = null;
    for (let rec = await diff.next(); rec !== null; rec = await diff.next()) {
      if (rec.index === index) len = rec.data.length;
    }
    return len;
  } finally {
    await diff.close();
  }
}

/**
 * The index and length of an uncompressed diff's last record, from the file's size (every record but a
 * short last one is `8 + bs` bytes) and that record's header; null when it has none, undefined when the
 * size does not fit (read through instead: the parser says what is wrong).
 */
function lastRecordOf(fd: number, bs: number): { index: number; length: number } | null | undefined {
  const size = fs.fstatSync(fd).size;
  if (size < HEADER_SIZE) return undefined;
  if (size === HEADER_SIZE) return null;
  const full = RECORD_HEADER_SIZE + bs;
  const tail = (size - HEADER_SIZE) % full || full;
  if (tail <= RECORD_HEADER_SIZE) return undefined;
  const h = Buffer.alloc(RECORD_HEADER_SIZE);
  if (fs.readSync(fd, h, 0, HEADER_SIZE, 0) !== HEADER_SIZE || h.readUInt32LE(0) !== bs) return undefined;
  if (fs.readSync(fd, h, 0, RECORD_HEADER_SIZE, size - tail) !== RECORD_HEADER_SIZE) return undefined;
  const offset = h.readUInt32LE(0) + h.readUInt32LE(4) * 2 ** 32;
  if (offset % bs !== 0) return undefined;
  return { index: offset / bs, length: tail - RECORD_HEADER_SIZE };
}
