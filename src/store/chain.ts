/**
 * A backup chain on the backup host: `NAME.ver`, and per generation N `NAME.N[.gz|.lzop|.zst]`,
 * `NAME.N.md5`, `NAME.N.json`. Reading side only; writing goes through `commit.ts`.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import {
  type Compression,
  COMPRESSIONS,
  EXTENSION,
  openDecompressed,
  openDecompressedSource,
} from "../compress/codec.ts";
import { BlockdiffError, describeIoError, IntegrityError, UsageError } from "../errors.ts";
import { DiffReader } from "../format/diff.ts";
import { digestBlockCount } from "../format/digest.ts";
import { DigestCursor } from "../format/digest_cursor.ts";
import { decodeManifest, type Manifest } from "../format/manifest.ts";
import { decodeVersion } from "../format/ver.ts";
import { foldInProgress } from "./journal_record.ts";
import type { ChainWriters } from "./writer_types.ts";
import { type ByteSource, FdSource } from "../io/byte_source.ts";
import { withReadErrors, wrapReadError } from "../compress/read_errors.ts";

export interface DiffFile {
  path: string;
  compression: Compression;
}

/** A diff file opened for reading: its descriptor, or for a diff kept elsewhere (S3), `open` (fd -1). */
export interface OpenedDiffFile extends DiffFile {
  fd: number;
  open?: () => ByteSource;
}

export interface OpenDigest {
  blocksize: number;
  blocks: number;
  cursor: DigestCursor;
}

export class Chain {
  readonly dir: string;
  readonly name: string;

  /** `spec` is NAME or DIR/NAME. */
  constructor(spec: string) {
    if (spec === "" || spec.endsWith("/")) throw new UsageError(`invalid chain name '${spec}'`);
    this.dir = path.dirname(spec);
    this.name = path.basename(spec);
  }

  /** Where the chain is, for messages: DIR/NAME, or the s3:// URL of one in a bucket. */
  get location(): string {
    return this.path("");
  }

  path(suffix: string): string {
    return path.join(this.dir, this.name + suffix);
  }
  get verPath(): string {
    return this.path(".ver");
  }
  /** The run lock every command that changes the chain holds (store/lock.ts). */
  get lockPath(): string {
    return this.path(".lock");
  }
  /** The commit in progress (store/journal.ts). */
  get journalPath(): string {
    return this.path(".journal");
  }
  digestPath(gen: number): string {
    return this.path(`.${gen}.md5`);
  }
  manifestPath(gen: number): string {
    return this.path(`.${gen}.json`);
  }
  diffPath(gen: number, c: Compression): string {
    return this.path(`.${gen}${EXTENSION[c]}`);
  }

  /** Every file name generation `gen` may have. */
  generationPaths(gen: number): string[] {
    return [...COMPRESSIONS.map((c) => this.diffPath(gen, c)), this.digestPath(gen), this.manifestPath(gen)];
  }

  /** Whether the diffs are files here (not in a bucket). */
  get diffsAreLocal(): boolean {
    return true;
  }

  /** The store's own writers (a chain in a bucket); null: the directory's (writers.ts). */
  get writers(): ChainWriters | null {
    return null;
  }

  /** The number in NAME.ver; null when there is no NAME.ver. A directory or garbage there is corruption. */
  readVersionFile(): number | null {
    let text: string;
    try {
      text = fs.readFileSync(this.verPath, "utf8");
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return null;
      if (code === "EISDIR") throw new IntegrityError(`${this.verPath}: is a directory, not a version file`);
      throw describeIoError(`reading ${this.verPath}`, err);
    }
    return decodeVersion(text, this.verPath);
  }

  /** The last complete generation; 0 when the chain has none yet. */
  readVersion(): number {
    return this.readVersionFile() ?? 0;
  }

  /** The last complete generation; an error when the chain does not exist. */
  requireVersion(): number {
    const ver = this.readVersion();
    if (ver === 0) {
      if (fs.existsSync(this.digestPath(1))) {
        throw new IntegrityError(
          `${this.verPath} is missing but the chain's generation files exist: run ` +
            `'blockdiff repair ${this.path("")}' to set it to the newest generation whose chain verifies`,
        );
      }
      throw new BlockdiffError(`no backup chain ${this.path("")} (${this.verPath} does not exist)`);
    }
    return ver;
  }

  /**
   * Generation `gen`'s diff file. Two names exist only while a prune changes its compression (journal
   * present): the manifest says which one is current.
   */
  findDiff(gen: number): DiffFile {
    const found = COMPRESSIONS.filter((c) => fs.existsSync(this.diffPath(gen, c)))
      .map((c) => ({ path: this.diffPath(gen, c), compression: c }));
    if (found.length === 0) {
      throw new IntegrityError(
        `generation ${gen}: diff file ${this.diffPath(gen, "none")}[.gz|.lzop|.zst] is missing`,
      );
    }
    if (found.length === 1) return found[0];
    const fold = foldInProgress(this);
    const names = found.map((f) => path.basename(f.path)).sort();
    if (fold?.generation === gen && names.join() === [fold.diffFile, fold.oldDiffFile].sort().join()) {
      let current = fold.oldDiffFile;
      try {
        if (this.readManifest(gen)?.diffSha256 === fold.manifest.diffSha256) current = fold.diffFile;
      } catch { /* a manifest being replaced reads whole or not at all: the old one stands */ }
      return found.find((f) => path.basename(f.path) === current)!;
    }
    throw new IntegrityError(
      `generation ${gen}: more than one diff file (${found.map((f) => f.path).join(", ")})`,
    );
  }

  /** The size of a diff file findDiff gave. */
  diffSize(f: DiffFile): number {
    try {
      return fs.statSync(f.path).size;
    } catch (err) {
      throw describeIoError(f.path, err);
    }
  }

  /** Opens generation `gen`'s diff file (not read yet): the descriptor stays valid whatever a prune does. */
  openDiffFile(gen: number): OpenedDiffFile {
    const f = this.findDiff(gen);
    try {
      return { ...f, fd: fs.openSync(f.path, "r") };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") {
        throw new IntegrityError(`generation ${gen}: diff file ${f.path} is missing`);
      }
      throw describeIoError(`opening ${f.path}`, err);
    }
  }

  /** Opens generation `gen`'s diff, decompressed and parsed; `onRaw` sees the file's bytes. */
  openDiff(gen: number, onRaw?: (b: Uint8Array) => void): Promise<DiffReader> {
    return readDiffFile(this.openDiffFile(gen), onRaw);
  }

  /** Opens generation `gen`'s digest file, checks its length, and returns a cursor after the header. */
  openDigest(gen: number, onRaw?: (b: Uint8Array) => void): Promise<OpenDigest> {
    return openDigestFile(this.digestPath(gen), onRaw);
  }

  /** The manifest of `gen`, or null when the generation has none (written by the original tools). */
  readManifest(gen: number): Manifest | null {
    const p = this.manifestPath(gen);
    let text: string;
    try {
      text = fs.readFileSync(p, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw describeIoError(`reading ${p}`, err);
    }
    return decodeManifest(text, p);
  }
}

/**
 * An opened diff file's uncompressed bytes (read through its descriptor, or for one kept elsewhere, its
 * `open`); `onRaw` sees the file's bytes.
 */
export function diffBytes(
  f: OpenedDiffFile,
  onRaw?: (b: Uint8Array) => void,
  bufferBytes?: number,
): ByteSource {
  return withReadErrors(
    f.open
      ? openDecompressedSource(f.open(), f.compression, onRaw, bufferBytes)
      : openDecompressed({ fd: f.fd, path: f.path }, f.compression, onRaw, bufferBytes),
    f.path,
  );
}

/** An opened diff file, decompressed and parsed (the reader owns the descriptor); `onRaw` sees its bytes. */
export async function readDiffFile(f: OpenedDiffFile, onRaw?: (b: Uint8Array) => void): Promise<DiffReader> {
  const src = diffBytes(f, onRaw);
  try {
    return await DiffReader.open(src, f.path);
  } catch (err) {
    await src.close();
    throw wrapReadError(f.path, err);
  }
}

/** A digest file of the chain: one that is missing means the chain is broken (exit 3), not a failed run. */
async function openDigestFile(p: string, onRaw?: (b: Uint8Array) => void): Promise<OpenDigest> {
  let fd: number;
  try {
    fd = fs.openSync(p, "r");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      throw new IntegrityError(`digest file ${p} is missing (the chain is broken)`);
    }
    throw describeIoError(`opening digest ${p}`, err);
  }
  const src = new FdSource(fd);
  try {
    const blocks = digestBlockCount(fs.fstatSync(fd).size, p);
    return { blocks, ...await DigestCursor.open(src, p, onRaw) };
  } catch (err) {
    await src.close();
    throw err;
  }
}
