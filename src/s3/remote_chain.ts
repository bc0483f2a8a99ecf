/**
 * A chain in a bucket (layout.ts), as commands see it: a `Chain` whose files are the local copy of the
 * bucket's small objects (`.ver`, manifests, digests: open_chain.ts keeps it in step) and whose diffs are
 * read from the bucket. So list, status, verify and restore read an S3 chain with the code that reads a
 * local one; a backup's and a prune's writers are the bucket's (given by open_chain.ts).
 */
import { BY_EXTENSION } from "../compress/codec.ts";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { Chain, type DiffFile, type OpenedDiffFile } from "../store/chain.ts";
import type { ChainWriters } from "../store/writer_types.ts";
import type { Bucket } from "./bucket.ts";
import type { ChainKeys, RemoteState } from "./layout.ts";
import { RangeSource } from "./range_source.ts";

/** The local copy of an S3 chain's small objects, read as a chain whose diffs are in the bucket. */
export class RemoteChain extends Chain {
  readonly bucket: Bucket;
  readonly keys: ChainKeys;
  readonly state: RemoteState;

  readonly #writers: ChainWriters;

  constructor(
    cacheSpec: string,
    o: { bucket: Bucket; keys: ChainKeys; state: RemoteState; writers: (chain: RemoteChain) => ChainWriters },
  ) {
    super(cacheSpec);
    this.bucket = o.bucket;
    this.keys = o.keys;
    this.state = o.state;
    this.#writers = o.writers(this);
  }

  override get writers(): ChainWriters {
    return this.#writers;
  }

  /** Records an object this run wrote (of generation `gen`), so that reads of the chain find it. */
  noteObject(gen: number, key: string, size: number): void {
    this.state.objects.set(key, { key, size, etag: "", lastModified: new Date() });
    const data = this.state.data.get(gen) ?? [];
    if (!data.includes(key)) this.state.data.set(gen, [...data, key]);
  }

  /** Records generation `gen` as published by this run. */
  notePublished(gen: number): void {
    if (!this.state.manifests.includes(gen)) this.state.manifests.push(gen);
    this.state.version = Math.max(this.state.version, gen);
  }

  override requireVersion(): number {
    if (this.state.version === 0) {
      throw new BlockdiffError(
        `no backup chain ${this.location} (no ${this.keys.url(this.keys.ver)} in the bucket)`,
      );
    }
    return super.requireVersion();
  }

  override get location(): string {
    return this.keys.loc.url;
  }

  /** The diff object generation `gen`'s manifest names. */
  override findDiff(gen: number): DiffFile {
    const m = this.readManifest(gen);
    const key = m && this.keys.named(m.diffFile);
    const info = key ? this.state.objects.get(key) : undefined;
    if (!m || !info) {
      throw new IntegrityError(
        `generation ${gen}: diff object ${key ? this.keys.url(key) : `of ${this.keys.loc.url}`} is missing`,
      );
    }
    const ext = /(\.gz|\.lzop|\.zst)$/.exec(m.diffFile)?.[1] ?? "";
    return { path: this.keys.url(key!), compression: BY_EXTENSION.get(ext) ?? "none" };
  }

  override diffSize(f: DiffFile): number {
    return this.state.objects.get(this.#key(f))!.size;
  }

  #key(f: DiffFile): string {
    return f.path.slice(`s3://${this.keys.loc.bucket}/`.length);
  }

  override get diffsAreLocal(): boolean {
    return false;
  }

  override openDiffFile(gen: number): OpenedDiffFile {
    const f = this.findDiff(gen);
    const key = this.#key(f);
    const size = this.state.objects.get(key)!.size;
    return { ...f, fd: -1, open: () => new RangeSource(this.bucket, key, size) };
  }
}
