/**
 * What a backup and a prune write a chain's new files through, whatever the store (a directory:
 * generation_writer.ts, fold_writer.ts; a bucket: src/s3/): writers.ts gives a chain's.
 */
import type { Hash } from "node:crypto";
import type { Writable } from "node:stream";
import type { Compression } from "../compress/codec.ts";
import type { Manifest } from "../format/manifest.ts";

/** A writable that counts its bytes and takes their SHA-256. */
export type HashingWritable = Writable & { bytes: number; readonly sha256: Hash | null };

export interface NewGeneration {
  generation: number;
  /** The chain's generation when the run began: publishing fails if that changed meanwhile. */
  previous: number;
  compression: Compression;
  /** The source's size when known: the diff is about as large at most (the part size of an upload). */
  sizeHint: number | null;
  /** Lines for the run's log; one that starts "warning: " goes to stderr too. */
  log: (line: string) => void;
}

export interface GenerationWriter {
  diffOut: HashingWritable;
  digestOut: HashingWritable;
  /** What the manifest records as the diff's and the digest's file names. */
  diffFile: string;
  digestFile: string;
  /** Where the diff goes, for messages. */
  diffPath: string;
  /** Publishes the generation with its manifest (the outputs have ended). */
  publish(manifest: Manifest): Promise<void>;
  /** Takes out whatever was written (on every failure; also from a signal handler: synchronous part first). */
  discard(): Promise<void>;
  /** The synchronous part of discard, for cleanup on a signal. */
  discardNow(): void;
}

export interface NewFold {
  /** The kept generation. */
  into: number;
  /** The removed generations it absorbs. */
  removes: number[];
  compression: Compression;
  /** The inputs' size: the new diff is about as large at most. */
  inputBytes: number;
  log: (line: string) => void;
}

export interface FoldWriter {
  /** The new diff (synced or uploaded once it has ended). */
  out: HashingWritable;
  /** What the manifest records as the new diff's name. */
  diffFile: string;
  /** Where the new diff goes, for messages. */
  where: string;
  /** Puts the new diff and `manifest` in place of the kept generation's, and removes the absorbed ones. */
  commit(manifest: Manifest): Promise<void>;
  /** Takes the new diff out (nothing was published). */
  discard(): Promise<void>;
}

/** A store's writers for one chain. */
export interface ChainWriters {
  /** Where a backup writes generation `o.generation` (nothing visible before its `publish`). */
  newGeneration(o: NewGeneration): Promise<GenerationWriter>;
  /** Where a prune writes a kept generation's new diff (nothing changes before its `commit`). */
  newFold(o: NewFold): Promise<FoldWriter>;
}
