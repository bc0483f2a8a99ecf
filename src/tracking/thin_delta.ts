/**
 * What `thin_delta` says changed between two thin devices of one pool, turned into the chain blocks to read.
 * Its output (thin-provisioning-tools 0.9) is a flat list of self-closing tags inside `<superblock
 * data_block_size=S>` and `<diff left=A right=B>`: `same`, `different`, `left_only` (unmapped since: reads
 * as zeros now), `right_only` (newly mapped), each with `begin` and `length` in pool data blocks of S
 * sectors. Parsed strictly: anything else fails, and the caller falls back to a full scan.
 */
import type { BlockRange } from "../engine/block_loop.ts";

export interface PoolDelta {
  /** Pool data block size in 512-byte sectors. */
  dataBlockSectors: number;
  /** Pool block ranges whose mapping differs (different, left_only, right_only), in increasing order. */
  changed: { begin: number; length: number }[];
}

const TAG = /<(\/?)([a-z_]+)((?:\s+[a-z_]+="[^"]*")*)\s*(\/?)>/g;

export function parseThinDelta(xml: string, ids: { left: number; right: number }): PoolDelta {
  const bad = (why: string) => new Error(`thin_delta output not understood: ${why}`);
  let dataBlockSectors = 0, inDiff = false, sawDiff = false;
  const changed: PoolDelta["changed"] = [];
  let at = 0;
  const between = (end: number) => {
    const text = xml.slice(at, end).trim();
    if (text) throw bad(`text outside tags: ${JSON.stringify(text.slice(0, 40))}`);
  };
  for (const m of xml.matchAll(TAG)) {
    between(m.index);
    at = m.index + m[0].length;
    const [, closing, name, attrText, selfClosing] = m;
    const attrs = Object.fromEntries([...attrText.matchAll(/([a-z_]+)="([^"]*)"/g)].map((a) => [a[1], a[2]]));
    const num = (k: string) => {
      if (!/^\d+$/.test(attrs[k] ?? "")) throw bad(`<${name}> without a number ${k}`);
      return Number(attrs[k]);
    };
    if (name === "superblock") {
      if (!closing) dataBlockSectors = num("data_block_size");
    } else if (name === "diff") {
      if (closing) inDiff = false;
      else {
        if (num("left") !== ids.left || num("right") !== ids.right) throw bad("it compares other devices");
        inDiff = sawDiff = true;
      }
    } else if (["same", "different", "left_only", "right_only"].includes(name) && selfClosing && inDiff) {
      const begin = num("begin"), length = num("length");
      if (name !== "same") changed.push({ begin, length });
    } else throw bad(`unexpected <${closing}${name}>`);
  }
  between(xml.length);
  if (!dataBlockSectors || !sawDiff) throw bad("no superblock or diff");
  changed.sort((a, b) => a.begin - b.begin);
  return { dataBlockSectors, changed };
}

/**
 * The chain blocks (of `blocksize` bytes, of a device of `size` bytes) that the changed pool blocks touch:
 * one pool block may cover several chain blocks and a chain block several pool blocks; ranges are merged,
 * and clamped to the device (a pool range may run past its end).
 */
export function changedBlocks(delta: PoolDelta, blocksize: number, size: number): BlockRange[] {
  const poolBytes = delta.dataBlockSectors * 512;
  const total = Math.ceil(size / blocksize);
  const out: BlockRange[] = [];
  for (const r of delta.changed) {
    const start = Math.floor((r.begin * poolBytes) / blocksize);
    const end = Math.min(total, Math.ceil(((r.begin + r.length) * poolBytes) / blocksize));
    if (start >= end) continue;
    const last = out.at(-1);
    if (last && start <= last.end) last.end = Math.max(last.end, end);
    else out.push({ start, end });
  }
  return out;
}
