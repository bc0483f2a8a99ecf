/**
 * The CPU side of a run: block hashing and piece compression, in worker threads (one per core, at most
 * two by default; env BLOCKDIFF_THREADS overrides, 0 = everything on the main thread). Both paths produce
 * the same bytes.
 */
import process from "node:process";
import { compressPiece, type PieceCompressor } from "../compress/piece.ts";
import { type BlockHasher, hashBlocksSync, SharedParts } from "./hasher.ts";
import { WorkerPool } from "./worker_pool.ts";
import { writeAtSync } from "../io/positioned_write.ts";
import { workersShareDescriptors } from "../runtime.ts";

/** Writes runs ([offset in `buf`, length, file position]) of a shared buffer to `fd`, off the main thread. */
export type RunWriter = (fd: number, buf: Uint8Array, runs: [number, number, number][]) => Promise<void>;

export interface Parallelism {
  hasher: BlockHasher;
  compress: PieceCompressor;
  writeRuns: RunWriter;
  /** Worker threads in use (0: main thread only). */
  threads: number;
  close(): Promise<void>;
}

/**
 * `readsAndWrites`: the main thread's own work is reading and writing (restore, verify, prune: nothing to
 * compress), so every worker hashes and the main thread hashes nothing (restore 1.57-1.76 -> 1.47-1.60 s
 * for a 1 GiB image, docs/performance.md).
 */
export function createParallelism(
  threads = threadsFromEnv(),
  o: { readsAndWrites?: boolean } = {},
): Parallelism {
  if (threads === 0) {
    return {
      hasher: {
        hashBlocks: (buf, len, bs, out) => Promise.resolve(hashBlocksSync(buf, len, bs, out)),
        close: () => Promise.resolve(),
      },
      compress: (kind, level, data) => Promise.resolve(compressPiece(kind, level, data)),
      writeRuns: (fd, buf, runs) => Promise.resolve(writeRunsSync(fd, buf, runs)),
      threads: 0,
      close: () => Promise.resolve(),
    };
  }
  const pool = new WorkerPool(threads);
  const spare: ArrayBuffer[] = []; // input buffers handed back by the workers
  return {
    hasher: o.readsAndWrites
      ? new PoolHasher(pool, { helpers: pool.size, mainHashes: false })
      : new PoolHasher(pool, { helpers: Math.max(1, pool.size - 1), mainHashes: true }),
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
    writeRuns: async (fd, buf, runs) => {
      if (!workersShareDescriptors || !(buf.buffer instanceof SharedArrayBuffer)) {
        return writeRunsSync(fd, buf, runs);
      }
      const at = buf.byteOffset;
      await pool.run({ op: "write", fd, buf: buf.buffer, runs: runs.map(([o, n, p]) => [at + o, n, p]) });
    },
    threads: pool.size,
    close: () => pool.close(),
  };
}

function writeRunsSync(fd: number, buf: Uint8Array, runs: [number, number, number][]): void {
  for (const [at, len, position] of runs) writeAtSync(fd, buf.subarray(at, at + len), position);
}

function threadsFromEnv(): number {
  const v = process.env.BLOCKDIFF_THREADS;
  return v !== undefined && /^\d+$/.test(v) ? Number(v) : 2;
}

/** Bytes per part of a chunk that one thread claims and hashes at a time (~0.5 ms of MD5). */
const PART_BYTES = 256 * 1024;

/**
 * Hashes a chunk on `helpers` workers and, for a dump, the main thread (with size-1 workers, at least one:
 * on two cores that beat two workers and an idle main thread), each taking the next unclaimed part
 * (SharedParts). A worker still compressing the
 * previous chunk joins late or not at all instead of holding the chunk up, and the main thread lets its
 * event loop run after each part, so that finished pieces are collected and the next ones handed out while
 * it hashes (docs/performance.md has the figures). Small or unshared inputs are hashed inline.
 */
class PoolHasher implements BlockHasher {
  constructor(
    private readonly pool: WorkerPool,
    private readonly o: { helpers: number; mainHashes: boolean },
  ) {}

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
    for (let k = 0; k < this.o.helpers; k++) {
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
      // a dump starts a second worker only for compression
      const p = this.pool.run(task, [], { spawn: this.o.helpers === this.pool.size });
      helping.add(p);
      p.then(() => helping.delete(p), () => {}); // a helper that starts late finds nothing left to claim
    }
    while (this.o.mainHashes && shared.hashNext()) await new Promise((resolve) => setImmediate(resolve));
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
