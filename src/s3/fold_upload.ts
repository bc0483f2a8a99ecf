/**
 * A prune's new diff of a kept generation in a bucket (store/writer_types.ts is the interface): uploaded
 * under a new token as it is written; the kept generation's manifest, replaced whole, is the commit point
 * (before it the old diff and the removed generations stand; after it the new diff, and the manifest's
 * `absorbed` list takes the removed generations out of the chain); then the objects nothing names any more
 * are deleted. A prune killed in between leaves objects that the next prune deletes (removeAbsorbed).
 * Readers meanwhile fail rather than read a mix; one prune of a chain at a time (this host's lock).
 */
import * as fs from "node:fs";
import { encodeManifest, type Manifest } from "../format/manifest.ts";
import type { FoldWriter, NewFold } from "../store/writer_types.ts";
import { replaceFile } from "../store/commit.ts";
import { viewOf } from "../store/generations.ts";
import { newToken } from "./layout.ts";
import type { RemoteChain } from "./remote_chain.ts";
import { ObjectUpload, UploadWritable } from "./upload.ts";

export class FoldUpload implements FoldWriter {
  readonly out: UploadWritable;
  readonly #upload: ObjectUpload;
  #committed = false;

  constructor(private readonly chain: RemoteChain, private readonly o: NewFold) {
    const key = chain.keys.diff(o.into, newToken(), o.compression);
    this.#upload = new ObjectUpload(chain.bucket, key, { expectedBytes: o.inputBytes });
    this.out = new UploadWritable(this.#upload);
  }

  get diffFile(): string {
    return this.#upload.key.slice(this.chain.keys.loc.prefix.length);
  }
  get where(): string {
    return this.chain.keys.url(this.#upload.key);
  }

  async commit(manifest: Manifest): Promise<void> {
    const { chain } = this, { bucket, keys } = chain;
    const text = encodeManifest(manifest);
    await bucket.put(keys.manifest(this.o.into), new TextEncoder().encode(text));
    this.#committed = true;
    chain.noteObject(this.o.into, this.#upload.key, this.out.bytes);
    replaceFile(chain.manifestPath(this.o.into), text);
    await removeAbsorbed(chain, this.o.log);
  }

  async discard(): Promise<void> {
    this.out.destroy();
    if (this.#committed) return;
    await this.#upload.abort().catch(() => {});
    await this.chain.bucket.remove(this.#upload.key).catch(() => {});
  }
}

/**
 * Deletes what the chain's manifests no longer name: the objects and manifests of generations a prune
 * removed (in a member's `absorbed` list), and the data objects of members other than the two their
 * manifest names (a pruned generation's old diff). The local copy follows.
 */
export async function removeAbsorbed(chain: RemoteChain, log: (line: string) => void): Promise<void> {
  const { bucket, keys, state } = chain;
  const view = viewOf(chain, state.version);
  const members = new Set(view.members);
  for (const g of state.manifests) {
    if (g > state.version) continue;
    const m = members.has(g) ? view.manifests.get(g) : null;
    if (members.has(g) && !m) continue; // unreadable: verify says so; nothing is deleted on a guess
    const named = m ? new Set([keys.named(m.diffFile), keys.named(m.digestFile)]) : new Set<string>();
    for (const key of [...state.data.get(g) ?? []]) {
      if (named.has(key)) continue;
      await bucket.remove(key);
      state.objects.delete(key);
      state.data.set(g, state.data.get(g)!.filter((k) => k !== key));
      log(
        `removed ${keys.url(key)} (${m ? `an old diff of generation ${g}` : `generation ${g} was pruned`})`,
      );
    }
    if (!members.has(g)) {
      await bucket.remove(keys.manifest(g));
      state.objects.delete(keys.manifest(g));
      for (const suffix of [".json", ".md5"]) fs.rmSync(chain.path(`.${g}${suffix}`), { force: true });
    }
  }
}
