/**
 * The check of a generation another program wrote (`blockdiff_backup NAME CMD...`), before it is published:
 * the digest is a block size header and whole 16-byte entries, in the chain's block size; the diff parses
 * (through its decompressor), in the same block size; it holds every block whose digest differs from the
 * previous generation's (and every new one), each of its blocks hashes to the new digest, and only the last
 * block may be short. What `blockdiff verify` would say of the
 * generation, so that a chain never takes in what it could not restore.
 */
import * as fs from "node:fs";
import { type Compression, openDecompressed } from "../compress/codec.ts";
import { withReadErrors } from "../compress/read_errors.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import { RecordBatch } from "../engine/record_batch.ts";
import { BlockdiffError, describeIoError, IntegrityError } from "../errors.ts";
import { DiffReader } from "../format/diff.ts";
import { digestBlockCount } from "../format/digest.ts";
import { DigestCursor, sameDigest } from "../format/digest_cursor.ts";
import { type ByteSource, FdSource } from "../io/byte_source.ts";
import type { OpenDigest } from "../store/chain.ts";

export interface CommandOutput {
  /** Read-only descriptors of the two files (closed here). */
  diff: number;
  digest: number;
  compression: Compression;
  /** The chain's last digest, its cursor unread (null: a new chain). */
  old: OpenDigest | null;
  hasher: BlockHasher;
  /** What messages call the two files. */
  diffWhat: string;
  digestWhat: string;
}

export interface CheckedOutput {
  blocksize: number;
  blocks: number;
  /** Records in the diff (the generation's changed blocks). */
  records: number;
  /** The length of the last block when the diff holds it; null when it is unchanged. */
  lastLength: number | null;
}

/** Checks the files; a problem is one line, exit 1 (the chain itself is fine: nothing was published). */
export async function checkCommandOutput(o: CommandOutput): Promise<CheckedOutput> {
  const digestSrc = new FdSource(o.digest);
  let diffFd: number | null = o.diff; // until the diff's source owns it
  let diffSrc: ByteSource | null = null;
  try {
    const n = digestBlockCount(fstatSize(o.digest, o.digestWhat), o.digestWhat);
    const { blocksize: bs, cursor: cur } = await DigestCursor.open(digestSrc, o.digestWhat);
    if (o.old && o.old.blocksize !== bs) {
      throw new IntegrityError(`${o.digestWhat}: block size ${bs}, but the chain's is ${o.old.blocksize}`);
    }
    diffSrc = withReadErrors(openDecompressed({ fd: o.diff, path: o.diffWhat }, o.compression), o.diffWhat);
    diffFd = null;
    const diff = await DiffReader.open(diffSrc, o.diffWhat);
    if (diff.blocksize !== bs) {
      throw new IntegrityError(`${o.diffWhat}: block size ${diff.blocksize}, but the digest's is ${bs}`);
    }
    const old = o.old, nOld = old?.blocks ?? 0;
    const batch = new RecordBatch(bs, o.hasher, o.diffWhat);
    let next = 0, records = 0, lastLength: number | null = null;
    /** The blocks before `upTo` that the diff skipped must be the previous generation's. */
    const unchanged = async (upTo: number) => {
      for (; next < upTo; next++) {
        const was = next < nOld ? await old!.cursor.get(next) : null;
        if (was === null) throw new IntegrityError(`${o.diffWhat}: block ${next} is new but missing`);
        if (!sameDigest(was, (await cur.get(next))!)) {
          throw new IntegrityError(
            `${o.diffWhat}: block ${next} changed (its digest differs) but is missing`,
          );
        }
      }
    };
    try {
      for (let rec = await diff.next(); rec !== null; rec = await diff.next()) {
        if (rec.index >= n) {
          throw new IntegrityError(
            `${o.diffWhat}: record for block ${rec.index}, past the digest's ${n} blocks`,
          );
        }
        if (rec.data.length < bs && rec.index !== n - 1) {
          throw new IntegrityError(`${o.diffWhat}: block ${rec.index} is short but is not the last block`);
        }
        await unchanged(rec.index);
        await batch.add(rec.index, rec.data, (await cur.get(rec.index))!);
        next = rec.index + 1;
        records++;
        if (rec.index === n - 1) lastLength = rec.data.length;
      }
      await unchanged(n);
    } finally {
      await batch.finish(); // a record that does not hash to its digest is reported before a later problem
    }
    return { blocksize: bs, blocks: n, records, lastLength };
  } catch (err) {
    if (!(err instanceof BlockdiffError)) throw err;
    throw new BlockdiffError(`${err.message}: nothing of this run was published`);
  } finally {
    await diffSrc?.close().catch(() => {});
    if (diffFd !== null) fs.closeSync(diffFd);
    await digestSrc.close();
  }
}

function fstatSize(fd: number, what: string): number {
  try {
    return fs.fstatSync(fd).size;
  } catch (err) {
    throw describeIoError(`reading ${what}`, err);
  }
}
