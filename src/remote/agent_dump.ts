/**
 * The agent's dump, on the host that holds the source: the old digest read from stdin, the engine's loop
 * over PATH (or over an LVM snapshot of it), hashing and compressing here, and everything written as frames
 * on stdout (frames.ts), ending with the trailer or an error frame. Nothing is written to the remote disk.
 */
import process from "node:process";
import { Writable } from "node:stream";
import { checkLevel } from "../compress/codec.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import { createParallelism } from "../engine/parallel.ts";
import { BlockdiffError, UsageError } from "../errors.ts";
import { DigestCursor } from "../format/digest_cursor.ts";
import { FdSource } from "../io/byte_source.ts";
import { FdWritable, writeConsumed } from "../io/sink.ts";
import { withSnapshot } from "../snapshot/session.ts";
import { openLocalSource } from "../source/local.ts";
import type { AgentDumpRequest } from "./agent_args.ts";
import { FRAME, frameHeader, GO_BYTE, type Trailer } from "./frames.ts";

type FrameFn = (type: number, payload: Uint8Array) => Promise<void>;

const utf8 = (s: string) => new TextEncoder().encode(s);

/** Runs the dump and frames its outcome on stdout; returns the exit code. */
export async function runAgentDump(r: AgentDumpRequest): Promise<number> {
  const out = new FdWritable(1, { sync: false });
  const frame: FrameFn = (type, payload) => {
    out.write(frameHeader(type, payload.length)); // header and payload are queued back to back
    return writeConsumed(out, payload);
  };
  try {
    const trailer = await agentDump(r, frame);
    await frame(FRAME.trailer, utf8(JSON.stringify(trailer)));
    return 0;
  } catch (err) {
    const msg = err instanceof BlockdiffError ? err.message : `agent: ${(err as Error)?.message ?? err}`;
    await frame(FRAME.error, utf8(msg)).catch(() => {});
    process.stderr.write(`blockdiff agent: ${msg}\n`);
    return err instanceof BlockdiffError ? err.exitCode : 1;
  } finally {
    await new Promise<void>((resolve) => out.end(resolve));
  }
}

async function agentDump(r: AgentDumpRequest, frame: FrameFn): Promise<Trailer> {
  const level = checkLevel(r.compression, r.level);
  const stdin = new FdSource(0, false);
  const dumpFrom = async (path: string): Promise<Trailer> => {
    let old: DigestCursor | null = null;
    if (r.oldDigestOnStdin) {
      const opened = await DigestCursor.open(stdin, "old digest on stdin");
      if (opened.blocksize !== r.blocksize) {
        throw new UsageError(`old digest has block size ${opened.blocksize}, expected ${r.blocksize}`);
      }
      old = opened.cursor;
    }
    const opened = await openLocalSource(path);
    const par = createParallelism();
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
          void frame(FRAME.progress, utf8(JSON.stringify({ bytes, total: opened.size })));
        },
      });
      return { ...result, diffBytes, digestBytes };
    } finally {
      await opened.source.close();
      await par.close();
    }
  };
  if (!r.snapshot) return await dumpFrom(r.path);
  return await withSnapshot({
    device: r.path,
    plan: r.snapshot,
    log: (line) => frame(FRAME.log, utf8(line)),
    quiesce: r.awaitLock ? () => controllerQuiesce(stdin, frame) : undefined,
    body: dumpFrom,
  });
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
