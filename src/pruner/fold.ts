/**
 * The new diff of a kept generation that absorbs the generations removed before it: for each block index,
 * the record of the newest of the inputs (the removed generations and the kept one, oldest first) that
 * has it, in offset order, written compressed. Every record written is
 * the block as it is in the kept generation, so each is checked against that generation's digest before
 * the fold can be published; a fold that makes the chain's first generation must hold every block. It is
 * written where the chain's store says (a temporary file, an upload: store/writer_types.ts).
 */
import { compressInto, type Compression, type CompressPipe } from "../compress/codec.ts";
import { Progress } from "../display/progress.ts";
import type { Parallelism } from "../engine/parallel.ts";
import { RecordBatch } from "../engine/record_batch.ts";
import { describeIoError, IntegrityError } from "../errors.ts";
import { type DiffReader, type DiffRecord, DiffWriter } from "../format/diff.ts";
import { ChunkBuffer, streamFinished, writeConsumed } from "../io/sink.ts";
import type { Chain } from "../store/chain.ts";
import type { FoldWriter } from "../store/writer_types.ts";

export interface FoldRequest {
  chain: Chain;
  /** Where the new diff goes (store/writers.ts); discarded here on a failure. */
  writer: FoldWriter;
  /** The kept generation. */
  into: number;
  /** The removed generations, then `into`, oldest first. */
  inputs: number[];
  /** `into` becomes the chain's first generation: its diff must hold every block. */
  first: boolean;
  compression: Compression;
  level: number;
  par: Parallelism;
}

export interface FoldedDiff {
  bytes: number;
  sha256: string;
  records: number;
  /** The length of the kept generation's last block when the diff holds it (always when `first`). */
  lastBlockLength: number | null;
}

export async function writeFold(o: FoldRequest): Promise<FoldedDiff> {
  const { chain, into } = o;
  const readers: DiffReader[] = [];
  let pipe: CompressPipe | null = null;
  let read = 0;
  const digest = await chain.openDigest(into).catch(async (err) => {
    await o.writer.discard();
    throw err;
  });
  const totalIn = o.inputs.reduce((n, g) => n + chain.diffSize(chain.findDiff(g)), 0);
  const progress = new Progress(`prune ${chain.name}: generation ${into}`, totalIn);
  try {
    for (const g of o.inputs) {
      const r = await chain.openDiff(g, (b) => progress.update(read += b.length));
      readers.push(r);
      if (r.blocksize !== digest.blocksize) {
        throw new IntegrityError(
          `${r.what}: block size ${r.blocksize} differs from the chain's ${digest.blocksize}`,
        );
      }
    }
    const file = o.writer.out;
    const out = pipe = compressInto(o.compression, o.level, file, o.par.compress);
    out.done.catch(() => {}); // awaited below, unless a record fails first
    const buffer = new ChunkBuffer((c) => writeConsumed(out.head, c));
    const writer = new DiffWriter((b) => buffer.write(b));
    const bs = digest.blocksize, n = digest.blocks;
    const batch = new RecordBatch(bs, o.par.hasher, `the new diff of generation ${into}`);
    let records = 0, lastBlockLength: number | null = null;
    try {
      await writer.header(bs);
      const heads: (DiffRecord | null)[] = [];
      for (const r of readers) heads.push(await r.next());
      for (;;) {
        let index = Infinity;
        for (const h of heads) if (h && h.index < index) index = h.index;
        if (index === Infinity || index >= n) break; // past the kept generation's end: it shrank
        const newest = heads.findLastIndex((h) => h?.index === index);
        const rec = heads[newest]!;
        if (o.first && index !== records) {
          throw new IntegrityError(`block ${records} is in none of generations ${o.inputs.join(", ")}`);
        }
        if (rec.data.length < bs && index !== n - 1) {
          throw new IntegrityError(`${readers[newest].what}: block ${index} is short but not the last block`);
        }
        await batch.add(index, rec.data, (await digest.cursor.get(index))!);
        await writer.record(rec.offset, rec.data);
        records++;
        if (index === n - 1) lastBlockLength = rec.data.length;
        for (let k = 0; k < heads.length; k++) {
          if (heads[k]?.index === index) heads[k] = await readers[k].next();
        }
      }
      if (o.first && records !== n) {
        throw new IntegrityError(`block ${records} is in none of generations ${o.inputs.join(", ")}`);
      }
    } finally {
      await batch.finish(); // every record written is the kept generation's block, or nothing is published
    }
    await buffer.drain();
    out.head.end();
    await out.done;
    const written = file; // fsynced (or uploaded) once finished
    await streamFinished(written);
    return {
      bytes: written.bytes,
      sha256: written.sha256!.digest("hex"),
      records,
      lastBlockLength,
    };
  } catch (err) {
    pipe?.head.destroy();
    await o.writer.discard();
    throw describeIoError(`writing ${o.writer.where}`, err); // a BlockdiffError stays as it is
  } finally {
    progress.end();
    for (const r of readers) await r.close().catch(() => {});
    await digest.cursor.close();
  }
}
