/**
 * Opening a chain in a bucket: the bucket reached, its objects listed, and the local copy of its small
 * objects brought in step (cacheDir: `$XDG_CACHE_HOME/blockdiff/s3/HOST/BUCKET/PREFIX/`), as a RemoteChain
 * that writes through the bucket's writers.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { describeIoError } from "../errors.ts";
import { decodeManifest, type Manifest } from "../format/manifest.ts";
import { encodeVersion } from "../format/ver.ts";
import { sha256OfFileOrNull } from "../io/file_sha.ts";
import { replaceFile } from "../store/commit.ts";
import type { Bucket } from "./bucket.ts";
import { connectBucket } from "./connect.ts";
import { FoldUpload } from "./fold_upload.ts";
import { GenerationUpload } from "./generation_upload.ts";
import { ChainKeys, readRemoteState, type RemoteState } from "./layout.ts";
import { parseS3Location, type S3Location } from "./location.ts";
import { RemoteChain } from "./remote_chain.ts";

export interface S3ChainOptions {
  endpoint?: string;
  /** Fetch every digest again, whatever the cache holds (verify checks the bucket's objects). */
  refetchDigests?: boolean;
}

/** Opens chain `spec` (s3://bucket/prefix/NAME) for reading: the bucket reached, the local copy in step. */
export async function openRemoteChain(spec: string, o: S3ChainOptions): Promise<RemoteChain> {
  const loc = parseS3Location(spec);
  const bucket = await connectBucket({ bucket: loc.bucket, endpoint: o.endpoint });
  const keys = new ChainKeys(loc);
  const cache = cacheDir(loc, o.endpoint ?? process.env.AWS_ENDPOINT_URL);
  const state = await readRemoteState(bucket, keys);
  await syncCache({ bucket, keys, state, dir: cache, refetch: o.refetchDigests ?? false });
  return new RemoteChain(path.join(cache, loc.name), {
    bucket,
    keys,
    state,
    writers: (chain) => ({
      newGeneration: (g) => Promise.resolve(new GenerationUpload(chain, g)),
      newFold: (f) => Promise.resolve(new FoldUpload(chain, f)),
    }),
  });
}

/** Where the local copy of an S3 chain's small objects is kept. */
export function cacheDir(loc: S3Location, endpoint: string | undefined): string {
  const root = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  const server = endpoint ? new URL(endpoint).host.replace(/[^A-Za-z0-9.-]/g, "_") : "aws";
  return path.join(root, "blockdiff", "s3", server, loc.bucket, ...loc.prefix.split("/").filter(Boolean));
}

/**
 * Brings the cache to the bucket's state: `.ver`, the published manifests (fetched when their ETag, the
 * MD5 of the content, differs from the copy's) and digests (fetched when their SHA-256 differs from the
 * manifest's, or always with `refetch`; a digest that still differs is kept as fetched, for verify and
 * restore to report); files of generations the bucket no longer has are removed.
 */
async function syncCache(o: {
  bucket: Bucket;
  keys: ChainKeys;
  state: RemoteState;
  dir: string;
  refetch: boolean;
}): Promise<void> {
  const { bucket, keys, state, dir } = o;
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw describeIoError(`creating the cache directory ${dir}`, err);
  }
  const local = (suffix: string) => path.join(dir, keys.loc.name + suffix);
  const keep = new Set<string>([local(".ver")]);
  for (const g of state.manifests) {
    if (g > state.version) continue;
    const mPath = local(`.${g}.json`), info = state.objects.get(keys.manifest(g))!;
    keep.add(mPath);
    let text = cachedText(mPath);
    if (text === null || md5(text) !== info.etag) {
      text = await bucket.getText(keys.manifest(g));
      if (text === null) continue; // removed meanwhile (a prune): the chain is read again
      replaceFile(mPath, text);
    }
    let m: Manifest;
    try {
      m = decodeManifest(text, keys.url(keys.manifest(g)));
    } catch {
      continue; // verify reports it
    }
    const dPath = local(`.${g}.md5`);
    keep.add(dPath);
    if (!o.refetch && sha256OfFileOrNull(dPath) === m.digestSha256) continue;
    const bytes = await bucket.getBytes(keys.named(m.digestFile));
    if (bytes === null) fs.rmSync(dPath, { force: true });
    else replaceFile(dPath, bytes);
  }
  for (const e of fs.readdirSync(dir)) {
    const p = path.join(dir, e);
    if (e.startsWith(keys.loc.name + ".") && /\.(\d+\.(json|md5)|ver)$/.test(e) && !keep.has(p)) {
      fs.rmSync(p, { force: true });
    }
  }
  replaceFile(local(".ver"), encodeVersion(state.version));
}

function cachedText(p: string): string | null {
  try {
    return fs.readFileSync(p, "utf8");
  } catch {
    return null;
  }
}

function md5(text: string): string {
  return createHash("md5").update(text).digest("hex");
}
