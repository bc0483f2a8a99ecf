/**
 * Compression of diff files: gzip and zstd in-process (node:zlib), lzop through the `lzop` program
 * (as the original did). File extensions are the original's: .gz, .lzop, and .zst for zstd.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { PassThrough, pipeline, Readable, Transform, type Writable } from "node:stream";
import * as zlib from "node:zlib";
import { BlockdiffError, UsageError } from "../errors.ts";
import { BufferedSource, type ByteSource, FdSource, StreamSource } from "../io/byte_source.ts";
import type { PieceCompressor } from "./piece.ts";
import { streamFinished } from "../io/sink.ts";
import { PieceCompressStream } from "./piece_stream.ts";
import { ZstdFrameDecompress } from "./zstd_frames.ts";

export const COMPRESSIONS = ["none", "gzip", "lzop", "zstd"] as const;
export type Compression = typeof COMPRESSIONS[number];

export const EXTENSION: Record<Compression, string> = { none: "", gzip: ".gz", lzop: ".lzop", zstd: ".zst" };
/** A diff file's compression by its extension ("" for none). */
export const BY_EXTENSION: ReadonlyMap<string, Compression> = new Map(
  COMPRESSIONS.map((c) => [EXTENSION[c], c]),
);

/** Default levels: fast settings that still shrink database pages well (README "Compression"). */
export const DEFAULT_LEVEL: Record<Compression, number> = { none: 0, gzip: 3, lzop: 3, zstd: 3 };
const LEVEL_RANGE: Record<Compression, [number, number]> = {
  none: [0, 0],
  gzip: [1, 9],
  lzop: [1, 9],
  zstd: [1, 19],
};

export function parseCompression(name: string): Compression {
  const c = name === "gz" ? "gzip" : name === "zst" ? "zstd" : name;
  if (!(COMPRESSIONS as readonly string[]).includes(c)) {
    throw new UsageError(`unknown compression '${name}' (use gzip, lzop, zstd or none)`);
  }
  return c as Compression;
}

export function checkLevel(kind: Compression, level: number): number {
  const [lo, hi] = LEVEL_RANGE[kind];
  if (!Number.isInteger(level) || level < lo || level > hi) {
    throw new UsageError(`compression level for ${kind} must be ${lo}..${hi}`);
  }
  return level;
}

/** A compressor in front of `out`: write the uncompressed stream into `head`, await `done`. */
export interface CompressPipe {
  head: Writable;
  done: Promise<void>;
}

/**
 * gzip and zstd compress each piece written to `head` on its own (through `pieces`, inline or in workers);
 * lzop runs the lzop program over the whole stream, as the original did.
 */
export function compressInto(
  kind: Compression,
  level: number,
  out: Writable,
  pieces: PieceCompressor,
): CompressPipe {
  switch (kind) {
    case "none":
      return { head: out, done: streamFinished(out) };
    case "gzip":
    case "zstd": {
      const head = new PieceCompressStream((data) => pieces(kind, level, data), out);
      return { head, done: Promise.all([streamFinished(head), streamFinished(out)]).then(() => {}) };
    }
    case "lzop": {
      const child = runFilter("lzop", [`-${level}`, "-c", "-f"]);
      return { head: child.stdin, done: Promise.all([pipe(child.stdout, out), child.exited]).then(() => {}) };
    }
  }
}

/**
 * An opened (possibly compressed) file as a stream of uncompressed bytes, read through its descriptor
 * whatever happens to its name; `onRaw` sees the file's bytes. `bufferBytes` sizes the reads and the
 * decompressor's output chunks (less for many streams open at once).
 */
export function openDecompressed(
  { fd, path }: { fd: number; path: string },
  kind: Compression,
  onRaw: (chunk: Uint8Array) => void = () => {},
  bufferBytes = 1 << 20,
): ByteSource {
  if (kind === "none") {
    const src = new FdSource(fd);
    return new BufferedSource({
      read: async (buf, off, len) => {
        const n = await src.read(buf, off, len);
        onRaw(buf.subarray(off, off + n));
        return n;
      },
      close: () => src.close(),
    }, bufferBytes);
  }
  const raw = fs.createReadStream(path, { fd, highWaterMark: bufferBytes });
  const tap = new Transform({
    transform(chunk, _enc, cb) {
      onRaw(chunk);
      cb(null, chunk);
    },
  });
  raw.on("error", (err) => tap.destroy(err));
  raw.pipe(tap);
  return decompressStream(tap, kind, Math.min(bufferBytes, 256 * 1024));
}

/** As openDecompressed, from a byte source (an object in a bucket) instead of a descriptor. */
export function openDecompressedSource(
  src: ByteSource,
  kind: Compression,
  onRaw: (chunk: Uint8Array) => void = () => {},
  bufferBytes = 1 << 20,
): ByteSource {
  const tapped: ByteSource = {
    read: async (buf, off, len) => {
      const n = await src.read(buf, off, len);
      onRaw(buf.subarray(off, off + n));
      return n;
    },
    close: () => src.close(),
  };
  if (kind === "none") return new BufferedSource(tapped, bufferBytes);
  // a source that has its bytes in pieces already (an object's ranges) gives them as they are: no copy
  const pieces = (src as { pieces?: () => AsyncGenerator<Uint8Array> }).pieces?.();
  const input = Readable.from(
    pieces
      ? (async function* () {
        for await (const p of pieces) {
          onRaw(p);
          yield p;
        }
      })()
      : (async function* () {
        for (;;) {
          const buf = new Uint8Array(bufferBytes);
          const n = await tapped.read(buf, 0, buf.length);
          if (n === 0) return;
          yield buf.subarray(0, n);
        }
      })(),
    { objectMode: false },
  );
  input.on("close", () => void src.close());
  return decompressStream(input, kind, Math.min(bufferBytes, 256 * 1024));
}

/** Uncompressed bytes of a compressed readable stream (gzip in chunks of `chunkBytes`). */
export function decompressStream(input: Readable, kind: Compression, chunkBytes = 256 * 1024): ByteSource {
  switch (kind) {
    case "none":
      return new StreamSource(input, () => void input.destroy());
    case "gzip":
    case "zstd": {
      const z = kind === "gzip" ? zlib.createGunzip({ chunkSize: chunkBytes }) : new ZstdFrameDecompress();
      input.on("error", (err) => z.destroy(err));
      input.pipe(z);
      return new StreamSource(z, () => {
        input.destroy();
        z.destroy();
      });
    }
    case "lzop": {
      const child = runFilter("lzop", ["-d", "-c", "-f"]);
      input.on("error", (err) => child.stdout.destroy(err));
      input.pipe(child.stdin);
      child.stdin.on("error", () => {}); // surfaces as the child's exit status
      const out = new PassThrough();
      pipeline(child.stdout, out, () => {});
      child.exited.then(() => out.end(), (err) => out.destroy(err));
      return new StreamSource(out, () => {
        input.destroy();
        child.kill();
      });
    }
  }
}

function pipe(from: Readable, to: Writable): Promise<void> {
  return new Promise((resolve, reject) => pipeline(from, to, (err) => err ? reject(err) : resolve()));
}

interface Filter {
  stdin: Writable;
  stdout: Readable;
  exited: Promise<void>;
  kill(): void;
}

/** Runs an external filter program; a missing program or a non-zero exit is one clear error. */
function runFilter(cmd: string, args: string[]): Filter {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => stderr += d);
  const exited = new Promise<void>((resolve, reject) => {
    child.on("error", (err: NodeJS.ErrnoException) =>
      reject(
        new BlockdiffError(
          err.code === "ENOENT"
            ? `${cmd} is not installed (needed for ${cmd} compression)`
            : `${cmd}: ${err.message}`,
        ),
      ));
    child.on("close", (code, signal) => {
      if (code === 0) resolve();
      else {reject(
          new BlockdiffError(`${cmd} failed (${signal ?? `exit ${code}`}): ${stderr.trim().split("\n")[0]}`),
        );}
    });
  });
  exited.catch(() => {}); // observed by the caller; avoid an unhandled rejection if it is not awaited yet
  return { stdin: child.stdin, stdout: child.stdout, exited, kill: () => child.kill() };
}
