/**
 * Writes the restored image, one chunk at a time in the order of the calls: a file or block device at the
 * chunk's position (on a new file, the runs of zero blocks are skipped and stay holes), a stream in order.
 * The writes run in a worker (engine/parallel.ts `writeRuns`) while this thread reads on; `finish` fsyncs a
 * file or device.
 */
import * as fs from "node:fs";
import { describeIoError } from "../errors.ts";
import type { RunWriter } from "../engine/parallel.ts";
import { writeAll } from "../io/sink.ts";
import type { RestoreTarget } from "./target.ts";

export class ImageWriter {
  #last: Promise<void> = Promise.resolve();
  #end = 0;

  constructor(
    private readonly target: RestoreTarget,
    private readonly what: string,
    private readonly writeRuns: RunWriter,
  ) {}

  /**
   * Writes `bytes` (blocks of `blocksize`) at `position` after the writes before it: where the target has
   * holes only `runs`, its blocks [from, to) that are not zeros. Resolves once `bytes` may be reused.
   */
  write(
    bytes: Uint8Array,
    position: number,
    o: { blocksize: number; runs: [number, number][] },
  ): Promise<void> {
    const before = this.#last;
    this.#end = position + bytes.length;
    const done = before.then(() => this.#write(bytes, position, o)).catch((err) => {
      throw describeIoError(`writing ${this.what}`, err);
    });
    this.#last = done;
    return done;
  }

  async #write(
    bytes: Uint8Array,
    position: number,
    o: { blocksize: number; runs: [number, number][] },
  ): Promise<void> {
    if (!this.target.positioned) return await writeAll(this.target.fd, bytes); // a stream: never synced
    const bs = o.blocksize;
    const runs: [number, number, number][] = this.target.holes
      ? o.runs.map(([a, b]) => [a * bs, Math.min(b * bs, bytes.length) - a * bs, position + a * bs])
      : [[0, bytes.length, position]];
    await this.writeRuns(this.target.fd, bytes, runs);
  }

  /** Waits for the writes, gives a file with holes its full size, and fsyncs a file or device. */
  async finish(): Promise<void> {
    await this.#last;
    try {
      if (this.target.holes) fs.ftruncateSync(this.target.fd, this.#end);
      if (this.target.sync) {
        await new Promise<void>((resolve, reject) =>
          fs.fsync(this.target.fd, (err) => err ? reject(err) : resolve())
        );
      }
    } catch (err) {
      throw describeIoError(`syncing ${this.what}`, err);
    }
  }

  /** Waits until no write runs (before the target is closed or removed); ignores their errors. */
  async settle(): Promise<void> {
    await this.#last.catch(() => {});
  }
}
