/**
 * The agent's dump, on the host that holds the source: the old digest read from stdin, the engine's loop
 * over PATH (or over an LVM snapshot of it, with change tracking for a thin LV), hashing and compressing
 * here, and everything written as frames on stdout (frames.ts), ending with the trailer or an error frame.
 * When it keeps a snapshot as the next run's baseline, it then waits for the controller's verdict on stdin
 * (the generation published or not) and keeps it or removes it. Nothing is written to the remote disk.
 */
import process from "node:process";
import { Writable } from "node:stream";
import { checkLevel } from "../compress/codec.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import { createParallelism, type Parallelism } from "../engine/parallel.ts";
import { BlockdiffError, UsageError } from "../errors.ts";
import { DigestCursor } from "../format/digest_cursor.ts";
import { FdSource, LimitedSource } from "../io/byte_source.ts";
import { FdWritable, writeConsumed } from "../io/sink.ts";
import { digestScanOf, openLocalSource } from "../source/local.ts";
import { type SnapshotDump, snapshotDump } from "../tracking/thin_tracking.ts";
import type { BlockRange } from "../engine/block_loop.ts";
import type { AgentDumpRequest } from "./agent_args.ts";
import { FRAME, frameHeader, GO_BYTE, PUBLISHED_BYTE, type Trailer } from "./frames.ts";

type FrameFn = (type: number, payload: Uint8Array) => Promise<void>;

const utf8 = (s: string) => new TextEncoder().encode(s);

/**
 * How long a kept snapshot waits for the controller's verdict: its commit takes seconds, but a controller
 * that vanished without closing the connection (a crashed host) must not leave the snapshot pending for ever.
 */
const VERDICT_WAIT_MS = 10 * 60 * 1000;

/** Runs the dump and frames its outcome on stdout; returns the exit code. */
export async function runAgentDump(r: AgentDumpRequest): Promise<number> {
  const out = new FdWritable(1, { sync: false });
  const frame: FrameFn = (type, payload) => {
    out.write(frameHeader(type, payload.length)); // header and payload are queued back to back
    return writeConsumed(out, payload);
  };
  const stdin = new FdSource(0, false);
  const par = createParallelism();
  try {
    const { trailer, snap } = await agentDump(r, { frame, stdin, par });
    await frame(FRAME.trailer, utf8(JSON.stringify(trailer)));
    if (snap?.baseline) {
      // the controller commits, then says whether the generation was published (nothing said: it was not)
      const verdict = new Uint8Array(1);
      const heard = stdin.read(verdict, 0, 1);
      heard.catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const silence = new Promise<number>((resolve) => timer = setTimeout(() => resolve(0), VERDICT_WAIT_MS));
      const published = await Promise.race([heard, silence]) === 1 && verdict[0] === PUBLISHED_BYTE;
      clearTimeout(timer);
      for (const line of snap.settle(published)) await frame(FRAME.log, utf8(line));
    }
    return 0;
  } catch (err) {
    const msg = err instanceof BlockdiffError ? err.message : `agent: ${(err as Error)?.message ?? err}`;
    await frame(FRAME.error, utf8(msg)).catch(() => {});
    process.stderr.write(`blockdiff agent: ${msg}\n`);
    return err instanceof BlockdiffError ? err.exitCode : 1;
  } finally {
    await par.close();
    await new Promise<void>((resolve) => out.end(resolve));
  }
}

async function agentDump(
  r: AgentDumpRequest,
  io: { frame: FrameFn; stdin: FdSource; par: Parallelism },
): Promise<{ trailer: Trailer; snap: SnapshotDump | null }> {
  const { frame, stdin, par } = io;
  const level = checkLevel(r.compression, r.level);
  const oldDigest = async () => {
    if (r.oldDigestBytes === null) return null;
    const opened = await DigestCursor.open(new LimitedSource(stdin, r.oldDigestBytes), "old digest on stdin");
    if (opened.blocksize !== r.blocksize) {
      throw new UsageError(`old digest has block size ${opened.blocksize}, expected ${r.blocksize}`);
    }
    return opened.cursor;
  };
  const dumpFrom = async (path: string, tracked: { ranges: BlockRange[]; size: number } | null = null) => {
    const old = await oldDigest();
    const opened = await openLocalSource(path);
    let diffBytes = 0, digestBytes = 0;
    const framed = (type: number, count: (n: number) => void) =>
      new Writable({
        highWaterMark: 0,
        write(chunk: Uint8Array, _enc, cb) {
          count(chunk.length);
          frame(type, chunk).then(() => cb(), cb);
        },
      });
    try {
      let lastReport = 0;
      const result = await dumpToStreams({
        source: opened.source,
        blocksize: r.blocksize,
        oldDigest: old,
        par,
        diffOut: framed(FRAME.diff, (n) => diffBytes += n),
        digestOut: framed(FRAME.digest, (n) => digestBytes += n),
        compression: r.compression,
        level,
        onProgress: (bytes) => {
          if (Date.now() - lastReport < 1000) return;
          lastReport = Date.now();
          void frame(FRAME.progress, utf8(JSON.stringify({ bytes, total: tracked?.size ?? opened.size })));
        },
        tracked: tracked
          ? { ...tracked, readAt: (b, len, pos) => opened.source.readAt(b, len, pos) }
          : undefined,
        digestSha256: r.tracking?.verify ?? false,
      });
      return { ...result, diffBytes, digestBytes };
    } finally {
      await opened.source.close();
    }
  };
  if (!r.snapshot) return { trailer: await dumpFrom(r.path), snap: null };
  let counts = { diffBytes: 0, digestBytes: 0 };
  const snap = await snapshotDump({
    device: r.path,
    plan: r.snapshot,
    blocksize: r.blocksize,
    log: (line) => frame(FRAME.log, utf8(line)),
    quiesce: r.awaitLock ? () => controllerQuiesce(stdin, frame) : undefined,
    tracking: r.tracking,
    dump: async (device, tracked) => {
      const t = await dumpFrom(device, tracked);
      counts = { diffBytes: t.diffBytes, digestBytes: t.digestBytes };
      return t;
    },
    verifyScan: (device) => digestScanOf(device, { blocksize: r.blocksize, par }),
  });
  return { trailer: { ...snap.result, ...counts, scan: snap.scan, baseline: snap.baseline }, snap };
}

/**
 * `--await-lock`: the controller holds the lock (MySQL, reached through the SSH connection). We say we are
 * ready (frame R) and wait for its go byte on stdin; after lvcreate, frame C tells it to unlock.
 */
async function controllerQuiesce(
  stdin: FdSource,
  frame: FrameFn,
): Promise<(created: boolean) => Promise<void>> {
  await frame(FRAME.ready, new Uint8Array(0));
  const go = new Uint8Array(1);
  if (await stdin.read(go, 0, 1) !== 1 || go[0] !== GO_BYTE) {
    throw new BlockdiffError("the controller did not get its lock; no snapshot taken");
  }
  return (created) => created ? frame(FRAME.created, new Uint8Array(0)) : Promise.resolve();
}
