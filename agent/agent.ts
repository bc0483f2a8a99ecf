/**
 * `blockdiff agent dump ...`: the remote side of a backup. Reads the old digest on stdin, runs the engine's
 * loop over PATH (hashing and compressing here, on the database host), and writes frames on stdout
 * (src/format/agent_frames.ts). Nothing is written to the remote disk.
 */
import process from "node:process";
import { Writable } from "node:stream";
import { intOpt, type ParsedArgs, stringOpt } from "../src/cli/args.ts";
import type { Command } from "../src/cli/command.ts";
import { checkLevel, parseCompression } from "../src/compress/codec.ts";
import { dumpToStreams } from "../src/engine/dump_output.ts";
import { createParallelism } from "../src/engine/parallel.ts";
import { BlockdiffError, UsageError } from "../src/errors.ts";
import { FRAME, frameHeader, GO_BYTE, type Trailer } from "../src/format/agent_frames.ts";
import { DigestCursor } from "../src/format/digest_cursor.ts";
import { FdSource } from "../src/io/byte_source.ts";
import { FdWritable, writeConsumed } from "../src/io/sink.ts";
import { openLocalSource } from "../src/source/local.ts";
import { runCleanups } from "../src/cleanup.ts";
import { withSnapshot } from "../src/snapshot/session.ts";

const OPTIONS = [
  { name: "block-size", kind: "value" as const },
  { name: "compress", kind: "value" as const },
  { name: "compress-level", kind: "value" as const },
  { name: "old-digest-on-stdin", kind: "flag" as const },
  { name: "lvm-snapshot", kind: "value" as const },
  { name: "lvcreate-prefix", kind: "value" as const },
  { name: "await-lock", kind: "flag" as const },
];

export const agentCommand: Command = {
  name: "agent",
  summary: "internal: the remote side of a backup over SSH",
  help: `usage: blockdiff agent dump --block-size N --compress KIND --compress-level N [--old-digest-on-stdin]
         [--lvm-snapshot SIZE --lvcreate-prefix WORDS [--await-lock]] PATH

Internal: started over SSH by 'blockdiff backup' on the host that holds the source. Writes framed diff
and digest data on stdout; reads the previous generation's digest on stdin.`,
  options: [{ name: "help", short: "h", kind: "flag" }, ...OPTIONS],
  async run(args) {
    if (args.positionals[0] !== "dump") throw new UsageError("agent: expected 'dump'");
    const out = new FdWritable(1, { sync: false });
    const frame = (type: number, payload: Uint8Array) => {
      out.write(frameHeader(type, payload.length)); // header and payload are queued back to back
      return writeConsumed(out, payload);
    };
    try {
      const trailer = await agentDump(args, frame);
      await frame(FRAME.trailer, utf8(JSON.stringify(trailer)));
    } catch (err) {
      const msg = err instanceof BlockdiffError ? err.message : `agent: ${(err as Error)?.message ?? err}`;
      await frame(FRAME.error, utf8(msg)).catch(() => {});
      process.stderr.write(`blockdiff agent: ${msg}\n`);
      return err instanceof BlockdiffError ? err.exitCode : 1;
    } finally {
      await new Promise<void>((r) => out.end(r));
    }
    return 0;
  },
};

type FrameFn = (type: number, payload: Uint8Array) => Promise<void>;

const utf8 = (s: string) => new TextEncoder().encode(s);

async function agentDump(args: ParsedArgs, frame: FrameFn): Promise<Trailer> {
  if (args.positionals.length !== 2) throw new UsageError("agent dump: expected one PATH");
  const blocksize = intOpt(args, "block-size")!;
  const compression = parseCompression(stringOpt(args, "compress") ?? "none");
  const level = checkLevel(compression, intOpt(args, "compress-level", 0) ?? 0);
  const stdin = new FdSource(0, false);
  const device = args.positionals[1];
  // The connection may drop (SIGHUP: cli/main.ts's handlers) or the controller die (EPIPE, SIGPIPE): the
  // snapshot goes on every path.
  process.on("SIGPIPE", () => {
    runCleanups("SIGPIPE");
    process.exit(128 + 13);
  });
  const dumpFrom = async (path: string): Promise<Trailer> => {
    let old: DigestCursor | null = null;
    if (args.opts.has("old-digest-on-stdin")) {
      const opened = await DigestCursor.open(stdin, "old digest on stdin");
      if (opened.blocksize !== blocksize) {
        throw new UsageError(`old digest has block size ${opened.blocksize}, expected ${blocksize}`);
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
      const r = await dumpToStreams({
        source: opened.source,
        blocksize,
        oldDigest: old,
        par,
        diffOut: framed(FRAME.diff, (n) => diffBytes += n),
        digestOut: framed(FRAME.digest, (n) => digestBytes += n),
        compression,
        level,
        onProgress: (bytes) => {
          if (Date.now() - lastReport < 1000) return;
          lastReport = Date.now();
          void frame(FRAME.progress, utf8(JSON.stringify({ bytes, total: opened.size })));
        },
      });
      return { ...r, diffBytes, digestBytes };
    } finally {
      await opened.source.close();
      await par.close();
    }
  };
  const size = stringOpt(args, "lvm-snapshot");
  if (size === undefined) return await dumpFrom(device);
  const plan = { size, lvcreatePrefix: stringOpt(args, "lvcreate-prefix") ?? "" };
  const log = (line: string) => frame(FRAME.log, utf8(line));
  return await withSnapshot(device, plan, {
    log,
    lock: args.opts.has("await-lock") ? () => controllerLock(stdin, frame) : undefined,
  }, dumpFrom);
}

/**
 * `--await-lock`: the controller holds the lock (MySQL, reached through the SSH connection). We say we are
 * ready (frame R) and wait for its go byte on stdin; after lvcreate, frame C tells it to unlock.
 */
async function controllerLock(stdin: FdSource, frame: FrameFn): Promise<(created: boolean) => Promise<void>> {
  await frame(FRAME.ready, new Uint8Array(0));
  const go = new Uint8Array(1);
  if (await stdin.read(go, 0, 1) !== 1 || go[0] !== GO_BYTE) {
    throw new BlockdiffError("the controller did not get its lock; no snapshot taken");
  }
  return (created) => created ? frame(FRAME.created, new Uint8Array(0)) : Promise.resolve();
}
