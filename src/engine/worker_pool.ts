/**
 * A small pool of worker threads (one per core, at most `max`, started as needed): block hashing over
 * SharedArrayBuffers, compression of independent pieces, and positioned writes of a shared buffer. Tasks queue in order; each idle worker takes the
 * next.
 */
import * as os from "node:os";
import { Worker } from "node:worker_threads";
import { moduleUrl } from "../runtime.ts";

/** Listed as an extra entry point in scripts/build.ts. */
export const WORKER_MODULE = "src/engine/worker.ts";

export type TaskMessage =
  | {
    id: number;
    op: "md5";
    buf: SharedArrayBuffer;
    offset: number;
    length: number;
    blocksize: number;
    out: SharedArrayBuffer;
    outOffset: number;
    /** [next part, parts done] (Int32), shared by every thread hashing this buffer. */
    ctl: SharedArrayBuffer;
    partBlocks: number;
  }
  | { id: number; op: "compress"; kind: "gzip" | "zstd"; level: number; data: Uint8Array }
  | {
    id: number;
    op: "write";
    fd: number;
    buf: SharedArrayBuffer;
    /** [offset in buf, length, file position] of each run to write. */
    runs: [number, number, number][];
  };

type Task = TaskMessage extends infer T ? T extends unknown ? Omit<T, "id"> : never : never;

interface Reply {
  id: number;
  data?: Uint8Array;
  /** A compress task's input buffer, handed back for reuse. */
  input?: Uint8Array;
  error?: string;
  /** The errno code of a failed system call (ENOSPC...). */
  code?: string;
}

interface Pending {
  msg: TaskMessage;
  /** May start a worker (else it waits for one that exists, unless there is none yet). */
  spawn: boolean;
  transfer: ArrayBuffer[];
  resolve: (r: Reply) => void;
  reject: (e: Error) => void;
}

export class WorkerPool {
  readonly size: number;
  #workers: Worker[] = [];
  #idle: Worker[] = [];
  #queue: Pending[] = [];
  #running = new Map<number, Pending>();
  #nextId = 1;
  #closed = false;
  #broken: Error | null = null;

  constructor(max = 2) {
    this.size = Math.max(1, Math.min(max, os.availableParallelism?.() ?? os.cpus().length));
  }

  /** Workers start when a task finds none idle: a run that never needs the second one (or any) saves it. */
  #spawn(): void {
    const w = new Worker(moduleUrl(WORKER_MODULE));
    w.on("message", (r: Reply) => this.#done(w, r));
    w.on("error", (err: Error) => this.#fail(err));
    w.on("exit", (code) => this.#closed || this.#fail(new Error(`worker thread exited (${code})`)));
    w.unref();
    this.#workers.push(w);
    this.#idle.push(w);
  }

  run(task: Task, transfer: ArrayBuffer[] = [], o: { spawn?: boolean } = {}): Promise<Reply> {
    if (this.#closed) return Promise.reject(new Error("worker pool is closed"));
    if (this.#broken) return Promise.reject(this.#broken);
    return new Promise((resolve, reject) => {
      const msg = { ...task, id: this.#nextId++ } as TaskMessage;
      this.#queue.push({ msg, spawn: o.spawn ?? true, transfer, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    if (
      !this.#idle.length && this.#workers.length < this.size &&
      this.#queue.some((p) => p.spawn || !this.#workers.length)
    ) this.#spawn();
    while (this.#idle.length && this.#queue.length) {
      const w = this.#idle.pop()!, p = this.#queue.shift()!;
      this.#running.set(p.msg.id, p);
      w.ref();
      w.postMessage(p.msg, p.transfer);
    }
  }

  #done(w: Worker, r: Reply): void {
    const p = this.#running.get(r.id);
    this.#running.delete(r.id);
    w.unref();
    this.#idle.push(w);
    if (p) {
      r.error ? p.reject(Object.assign(new Error(`worker: ${r.error}`), { code: r.code })) : p.resolve(r);
    }
    this.#dispatch();
  }

  #fail(err: Error): void {
    this.#broken ??= new Error(`worker thread failed: ${err.message}`);
    for (const p of [...this.#running.values(), ...this.#queue]) p.reject(this.#broken);
    this.#running.clear();
    this.#queue = [];
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
