/**
 * A chain's objects in a bucket, under `prefix`: `NAME.ver`, per generation N the manifest `NAME.N.json`
 * (the commit point, created only if absent) and the data objects it names, `NAME.N.TOKEN.md5` and
 * `NAME.N.TOKEN[.gz|.lzop|.zst]` (TOKEN: the writing run's, so two runs never write the same key). A
 * generation is published when its manifest exists: `.ver` is written after it, and a reader counts
 * manifests just past `.ver` as published too (a run that died between the two).
 */
import { randomBytes } from "node:crypto";
import { type Compression, EXTENSION } from "../compress/codec.ts";
import { decodeVersion } from "../format/ver.ts";
import type { Bucket, ObjectInfo } from "./bucket.ts";
import type { S3Location } from "./location.ts";

const MANIFEST_KEY = /^([1-9]\d{0,14})\.json$/;
const DATA_KEY = /^([1-9]\d{0,14})\.([0-9a-f]{8})(\.md5|\.gz|\.lzop|\.zst)?$/;

/** The keys of chain `loc` in its bucket. */
export class ChainKeys {
  constructor(readonly loc: S3Location) {}
  get base(): string {
    return this.loc.prefix + this.loc.name + ".";
  }
  get ver(): string {
    return this.base + "ver";
  }
  manifest(gen: number): string {
    return `${this.base}${gen}.json`;
  }
  digest(gen: number, token: string): string {
    return `${this.base}${gen}.${token}.md5`;
  }
  diff(gen: number, token: string, c: Compression): string {
    return `${this.base}${gen}.${token}${EXTENSION[c]}`;
  }
  /** The key of an object a manifest names (by its name relative to the prefix). */
  named(file: string): string {
    return this.loc.prefix + file;
  }
  url(key: string): string {
    return `s3://${this.loc.bucket}/${key}`;
  }
}

/** What a key of the chain is: generation N's manifest (token null) or a data object of run TOKEN; null: neither. */
export function parseKey(keys: ChainKeys, key: string): { generation: number; token: string | null } | null {
  const rest = key.slice(keys.base.length);
  const m = MANIFEST_KEY.exec(rest);
  if (m) return { generation: Number(m[1]), token: null };
  const d = DATA_KEY.exec(rest);
  return d ? { generation: Number(d[1]), token: d[2] } : null;
}

/** A new run's token for the keys of what it writes. */
export function newToken(): string {
  return randomBytes(4).toString("hex");
}

/** What the bucket holds of a chain: its objects by key, the published generations' manifests. */
export interface RemoteState {
  objects: Map<string, ObjectInfo>;
  /** `.ver`, or past it the last of the manifests that follow it without a gap (0: no chain yet). */
  version: number;
  /** The generations with a manifest, ascending. */
  manifests: number[];
  /** Data objects: generation -> keys. */
  data: Map<number, string[]>;
}

export async function readRemoteState(bucket: Bucket, keys: ChainKeys): Promise<RemoteState> {
  const objects = new Map((await bucket.list(keys.base)).map((o) => [o.key, o]));
  const manifests: number[] = [], data = new Map<number, string[]>();
  for (const key of objects.keys()) {
    const k = parseKey(keys, key);
    if (!k) continue;
    if (k.token === null) manifests.push(k.generation);
    else data.set(k.generation, [...data.get(k.generation) ?? [], key]);
  }
  manifests.sort((a, b) => a - b);
  let version = 0;
  if (objects.has(keys.ver)) {
    const text = await bucket.getText(keys.ver);
    if (text !== null) version = decodeVersion(text, keys.url(keys.ver));
  }
  const published = new Set(manifests);
  while (published.has(version + 1)) version++;
  return { objects, version, manifests, data };
}
