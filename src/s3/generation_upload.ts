/**
 * A backup's new generation written into a bucket (store/writer_types.ts is the interface): the diff
 * streams into a multipart upload as the dump produces it (no local copy), the digest into the local cache
 * (the next run reads it from there) and is uploaded at the end; then the manifest is created only if absent
 * (the commit point: of two runs exactly one publishes, the other exits 4), `.ver` follows, and the cache
 * takes the new generation. A failure aborts the upload and removes what was uploaded.
 */
import * as fs from "node:fs";
import { describeIoError } from "../errors.ts";
import { encodeManifest, type Manifest } from "../format/manifest.ts";
import { encodeVersion } from "../format/ver.ts";
import { FdWritable } from "../io/sink.ts";
import { replaceFile, tempPathFor } from "../store/commit.ts";
import type { GenerationWriter, NewGeneration } from "../store/writer_types.ts";
import type { Bucket } from "./bucket.ts";
import { lostTheRace, publishManifest, publishVersion, removeLeftovers } from "./publish.ts";
import { type ChainKeys, newToken } from "./layout.ts";
import type { RemoteChain } from "./remote_chain.ts";
import { ObjectUpload, uploadFromFd, UploadWritable } from "./upload.ts";

export class GenerationUpload implements GenerationWriter {
  readonly diffOut: UploadWritable;
  readonly digestOut: FdWritable;
  readonly #diffUpload: ObjectUpload;
  readonly #digestKey: string;
  readonly #digestTemp: string;
  readonly #bucket: Bucket;
  readonly #keys: ChainKeys;
  #published = false;
  readonly #explain = (err: unknown) => lostTheRace(this.#bucket, this.#keys, this.o.generation, err);

  constructor(
    private readonly chain: RemoteChain,
    private readonly o: NewGeneration,
  ) {
    const token = newToken();
    this.#bucket = chain.bucket;
    this.#keys = chain.keys;
    this.#diffUpload = new ObjectUpload(this.#bucket, this.#keys.diff(o.generation, token, o.compression), {
      // unknown in advance (a remote source): parts start small and grow (upload.ts)
      expectedBytes: (o.sizeHint ?? 0) * 1.01,
      explain: this.#explain,
    });
    this.#digestKey = this.#keys.digest(o.generation, token);
    this.diffOut = new UploadWritable(this.#diffUpload);
    this.#digestTemp = tempPathFor(chain.digestPath(o.generation));
    let fd: number;
    try {
      fd = fs.openSync(this.#digestTemp, "w+", 0o600); // read back for the upload
    } catch (err) {
      throw describeIoError(`creating ${this.#digestTemp}`, err);
    }
    this.digestOut = new FdWritable(fd, { sync: false });
  }

  get diffFile(): string {
    return this.#diffUpload.key.slice(this.#keys.loc.prefix.length);
  }
  get digestFile(): string {
    return this.#digestKey.slice(this.#keys.loc.prefix.length);
  }
  get diffPath(): string {
    return this.#keys.url(this.#diffUpload.key);
  }

  async publish(manifest: Manifest): Promise<void> {
    const { generation: g, log } = this.o;
    await this.#uploadDigest();
    await publishManifest(this.#bucket, this.#keys, g, encodeManifest(manifest));
    this.#published = true;
    this.chain.noteObject(g, this.#diffUpload.key, this.diffOut.bytes);
    this.chain.noteObject(g, this.#digestKey, this.digestOut.bytes);
    this.chain.notePublished(g);
    // published: what fails from here on is said, not undone (readers count the manifest without .ver,
    // and a cache that missed the generation is brought in step by the next run)
    const after = async (what: string, step: () => void | Promise<void>) => {
      try {
        await step();
      } catch (err) {
        log(`warning: generation ${g} is published, but ${what} failed: ${(err as Error).message}`);
      }
    };
    await after("writing .ver", () => publishVersion(this.#bucket, this.#keys, g));
    await after("updating the local cache", () => {
      fs.closeSync(this.digestOut.fd);
      fs.renameSync(this.#digestTemp, this.chain.digestPath(g));
      replaceFile(this.chain.manifestPath(g), encodeManifest(manifest));
      replaceFile(this.chain.verPath, encodeVersion(g));
    });
    await after(
      "removing leftovers of earlier runs",
      () => removeLeftovers({ bucket: this.#bucket, keys: this.#keys, log }),
    );
  }

  async #uploadDigest(): Promise<void> {
    const fd = this.digestOut.fd;
    const up = new ObjectUpload(this.#bucket, this.#digestKey, {
      expectedBytes: fs.fstatSync(fd).size,
      explain: this.#explain,
    });
    try {
      await uploadFromFd(up, fd);
    } catch (err) {
      await up.abort().catch(() => {});
      throw err;
    }
  }

  discardNow(): void {
    try {
      fs.closeSync(this.digestOut.fd);
    } catch { /* closed already */ }
    fs.rmSync(this.#digestTemp, { force: true });
  }

  async discard(): Promise<void> {
    this.diffOut.destroy();
    this.digestOut.destroy();
    this.discardNow();
    if (this.#published) return;
    // what cannot be removed now (the server is down) a later run removes
    await this.#diffUpload.abort().catch(() => {});
    for (const key of [this.#diffUpload.key, this.#digestKey]) await this.#bucket.remove(key).catch(() => {});
  }
}
