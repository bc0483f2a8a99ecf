/**
 * Where each block of the restored generation comes from, worked out from the digests alone, before any diff
 * is read. A member's diff holds (at least) the blocks whose digest differs from the member before it (every
 * block for the first member), in index order: so a block's copy is in the newest member where its digest
 * changed, and its record's rank in that diff is the number of changed blocks of that member before it. An
 * uncompressed diff of exactly that many records is read at those positions; one with more records (a dump
 * that was not given the previous digest, a prune's fold) and compressed ones are read in order. Blocks
 * generation K's digest gives as all zeros are not read: they are zeros.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import { describeIoError, IntegrityError } from "../errors.ts";
import { DIGEST_SIZE, digestBlockCount, HEADER_SIZE } from "../format/digest.ts";

export interface PlanMember {
  generation: number;
  digestPath: string;
}

export interface MemberPlan {
  /** Blocks of this generation (its digest's length). */
  blocks: number;
  /** Records its diff holds by the digests. */
  records: number;
  /** Whether one of them is its last block (which may be short). */
  holdsLast: boolean;
  /** Blocks of the restored generation whose copy is in this diff, and the last of them (-1: none). */
  survivors: number;
  lastSurvivor: number;
}

export interface RestorePlan {
  blocksize: number;
  /** Blocks of the restored generation (the last member). */
  blocks: number;
  members: MemberPlan[];
  /**
   * Per block of the restored generation: the member (index into `members`) whose diff holds it, or `zero`:
   * a full block of zeros by generation K's digest, which is not read at all.
   */
  owner: Uint16Array | Uint32Array;
  zero: number;
  /** Per block: the record's rank in that diff. */
  rank: Uint32Array;
}

/** Blocks whose digests are compared at a time (1 MiB of each digest). */
const SEGMENT = 65536;

/**
 * Reads the members' digests (oldest first; the last is the restored generation) once, a segment at a time:
 * memory is 6 bytes per block plus two segments, whatever the number of members.
 */
export function planRestore(members: PlanMember[], blocksize: number): RestorePlan {
  const plans: MemberPlan[] = members.map((m) => ({
    blocks: digestBlocks(m, blocksize),
    records: 0,
    holdsLast: false,
    survivors: 0,
    lastSurvivor: -1,
  }));
  const blocks = plans[plans.length - 1].blocks;
  const owner = plans.length < 0xffff ? new Uint16Array(blocks) : new Uint32Array(blocks);
  const zero = plans.length < 0xffff ? 0xffff : 0xffffffff;
  const z = new Int32Array(
    new Uint8Array(createHash("md5").update(new Uint8Array(blocksize)).digest()).buffer,
  );
  const rank = new Uint32Array(blocks);
  const span = Math.max(...plans.map((p) => p.blocks));
  let prev = new Int32Array(SEGMENT * 4), cur = new Int32Array(SEGMENT * 4);
  for (let first = 0; first < span; first += SEGMENT) {
    let prevEnd = first; // blocks of the member before, as an index bound in this segment
    for (let mi = 0; mi < members.length; mi++) {
      const p = plans[mi];
      const end = Math.min(first + SEGMENT, p.blocks);
      readDigestSlice(members[mi], first, end - first, cur);
      for (let i = first; i < end; i++) {
        const e = (i - first) * 4;
        const changed = mi === 0 || i >= prevEnd || cur[e] !== prev[e] || cur[e + 1] !== prev[e + 1] ||
          cur[e + 2] !== prev[e + 2] || cur[e + 3] !== prev[e + 3];
        if (!changed) continue;
        if (i < blocks) {
          owner[i] = mi;
          rank[i] = p.records;
        }
        p.records++;
        if (i === p.blocks - 1) p.holdsLast = true;
      }
      if (mi === members.length - 1) { // the restored generation: its zero blocks need no diff
        for (let i = first; i < end; i++) {
          const e = (i - first) * 4;
          if (cur[e] === z[0] && cur[e + 1] === z[1] && cur[e + 2] === z[2] && cur[e + 3] === z[3]) {
            owner[i] = zero;
          }
        }
      }
      prevEnd = Math.max(first, end);
      [prev, cur] = [cur, prev];
    }
  }
  for (let i = 0; i < blocks; i++) {
    if (owner[i] === zero) continue;
    const p = plans[owner[i]];
    p.survivors++;
    p.lastSurvivor = i;
  }
  return { blocksize, blocks, members: plans, owner, rank, zero };
}

/**
 * Whether an uncompressed diff of `size` bytes holds exactly the records the digests give it (then record r
 * lies at `recordPosition(r)`), the last of them possibly short.
 */
export function exactlyPlanned(p: MemberPlan, blocksize: number, size: number): boolean {
  const full = HEADER_SIZE + p.records * (blocksize + 8);
  if (p.records === 0) return size === HEADER_SIZE;
  return p.holdsLast ? size <= full && size > full - blocksize : size === full;
}

export function recordPosition(rank: number, blocksize: number): number {
  return HEADER_SIZE + rank * (blocksize + 8);
}

function digestBlocks(m: PlanMember, blocksize: number): number {
  const fd = openDigest(m);
  try {
    const head = new Uint8Array(HEADER_SIZE);
    if (fs.readSync(fd, head, 0, HEADER_SIZE, 0) !== HEADER_SIZE) {
      throw new IntegrityError(`${m.digestPath}: too short to hold a block size header`);
    }
    const bs = new DataView(head.buffer).getUint32(0, true);
    if (bs !== blocksize) {
      throw new IntegrityError(`${m.digestPath}: block size ${bs} differs from the chain's ${blocksize}`);
    }
    return digestBlockCount(fs.fstatSync(fd).size, m.digestPath);
  } finally {
    fs.closeSync(fd);
  }
}

/** Entries `first`..`first+count-1` of a member's digest into `out` (as 4 ints each). */
function readDigestSlice(m: PlanMember, first: number, count: number, out: Int32Array): void {
  if (count <= 0) return;
  const bytes = new Uint8Array(out.buffer, 0, count * DIGEST_SIZE);
  const fd = openDigest(m);
  try {
    for (let got = 0; got < bytes.length;) {
      const n = fs.readSync(fd, bytes, got, bytes.length - got, HEADER_SIZE + first * DIGEST_SIZE + got);
      if (n === 0) throw new IntegrityError(`${m.digestPath}: shorter than it was a moment ago`);
      got += n;
    }
  } catch (err) {
    throw describeIoError(`reading ${m.digestPath}`, err);
  } finally {
    fs.closeSync(fd);
  }
}

function openDigest(m: PlanMember): number {
  try {
    return fs.openSync(m.digestPath, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new IntegrityError(`digest file ${m.digestPath} is missing (the chain is broken)`);
    }
    throw describeIoError(`opening digest ${m.digestPath}`, err);
  }
}
