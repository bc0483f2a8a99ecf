/**
 * The CPU side of a run: block hashing and piece compression, in worker threads (one per core, at most
 * two by default; env BLOCKDIFF_THREADS overrides, 0 = everything on the main thread). Both paths produce
 * the same bytes.
 */
import process from "node:process";
import { compressPiece, type PieceCompressor } from "../compress/piece.ts";
import { type BlockHasher, hashBlocksSync, SharedParts } from "./hasher.ts";
import { WorkerPool } from "./worker_pool.ts";

export interface Parallelism {
  hasher: BlockHasher;
  compress: PieceCompressor;
  /** Worker threads in use (0: main thread only). */
  threads: number;
  close(): Promise<void>;
}

export function createParallelism(threads = threadsFromEnv()): Parallelism {
  if (threads === 0) {
    return {
      hasher: {
        hashBlocks: (buf, len, bs, out) => Promise.resolve(hashBlocksSync(buf, len, bs, out)),
        close: () => Promise.resolve(),
      },
      compress: (kind, level, data) => Promise.resolve(compressPiece(kind, level, data)),
      threads: 0,
      close: () => Promise.resolve(),
    };
  }
  const pool = new WorkerPool(threads);
  const spare: ArrayBuffer[] = []; // input buffers handed back by the workers
  return {
    hasher: new PoolHasher(pool),
    compress: async (kind, level, data) => {
      // The task may wait in the queue while the caller reuses `data`: send a copy, transferred (not cloned),
      // in a buffer a worker handed back when there is one of the right size.
      let buf = spare.pop();
      if (buf?.byteLength !== data.byteLength) buf = new ArrayBuffer(data.byteLength);
      const copy = new Uint8Array(buf);
      copy.set(data);
      const r = await pool.run({ op: "compress", kind, level, data: copy }, [buf]);
      if (r.input && spare.length < 4) spare.push(r.input.buffer as ArrayBuffer);
      return r.data!;
    },
    threads: pool.size,
    close: () => pool.close(),
  };
}

function threadsFromEnv(): number {
  const v = process.env.BLOCKDIFF_THREADS;
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : 2;
}

/** Bytes per part of a chunk that one thread claims and hashes at a time (~0.5 ms of MD5). */
const PART_BYTES = 256 * 1024;

/**
 * Hashes a chunk on the main thread and size-1 workers (at least one; on two cores that beat two workers and
 * an idle main thread), each taking the next unclaimed part (SharedParts). A worker still compressing the
 * previous chunk joins late or not at all instead of holding the chunk up, and the main thread lets its
 * event loop run after each part, so that finished pieces are collected and the next ones handed out while
 * it hashes (docs/performance.md has the figures). Small or unshared inputs are hashed inline.
 */
class PoolHasher implements BlockHasher {
  constructor(private readonly pool: WorkerPool) {}

  async hashBlocks(buf: Uint8Array, len: number, blocksize: number, out: Uint8Array): Promise<void> {
    const blocks = Math.ceil(len / blocksize);
    if (
      blocks < 4 * this.pool.size || !(buf.buffer instanceof SharedArrayBuffer) ||
      !(out.buffer instanceof SharedArrayBuffer)
    ) {
      return hashBlocksSync(buf, len, blocksize, out);
    }
    const partBlocks = Math.max(1, Math.floor(PART_BYTES / blocksize));
    const shared = new SharedParts(
      buf,
      len,
      blocksize,
      out,
      new Int32Array(new SharedArrayBuffer(8)),
      partBlocks,
    );
    const helping = new Set<Promise<unknown>>();
    for (let k = 0; k < Math.max(1, this.pool.size - 1); k++) {
      const task = {
        op: "md5" as const,
        buf: buf.buffer,
        offset: buf.byteOffset,
        length: len,
        blocksize,
        out: out.buffer,
        outOffset: out.byteOffset,
        ctl: shared.ctl.buffer as SharedArrayBuffer,
        partBlocks,
      };
      const p = this.pool.run(task, [], { spawn: false }); // a second worker only for compression
      helping.add(p);
      p.then(() => helping.delete(p), () => {}); // a helper that starts late finds nothing left to claim
    }
    while (shared.hashNext()) await new Promise((resolve) => setImmediate(resolve));
    // Parts still being hashed belong to helpers that are running: each replies when it has finished them.
    while (shared.done < shared.parts) {
      if (!helping.size) throw new Error("hashing: parts left unfinished by the workers");
      await Promise.race(helping);
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}
