/**
 * Publishing a generation in a bucket (layout.ts): its manifest, created only if
 * absent, is the commit point; `.ver` follows. Then what dead and losing runs left is removed.
 */
import { BlockdiffError, EXIT } from "../errors.ts";
import { decodeManifest } from "../format/manifest.ts";
import { encodeVersion } from "../format/ver.ts";
import type { Bucket } from "./bucket.ts";
import { type ChainKeys, newToken, parseKey, readRemoteState } from "./layout.ts";

/** Unpublished objects and uploads this old belong to a run that died. */
const DEAD_AFTER_MS = 24 * 3600_000;

/**
 * Before a run publishes: the manifest's conditional create must work in this bucket. Ceph radosgw 16
 * ignores If-None-Match in a bucket with versioning enabled (two runs would both "create" a generation), so
 * there a probe key is created twice; a second create that succeeds refuses the run.
 */
export async function checkConditionalCreate(bucket: Bucket, keys: ChainKeys): Promise<void> {
  if (await bucket.versioning() !== "Enabled") return;
  const probe = `${keys.base}probe-${newToken()}`;
  const once = await bucket.putIfAbsent(probe, new Uint8Array(0));
  const twice = await bucket.putIfAbsent(probe, new Uint8Array(0));
  await bucket.remove(probe);
  if (once && twice) {
    throw new BlockdiffError(
      `s3://${bucket.name} has versioning enabled and its server ignores If-None-Match there (Ceph ` +
        `radosgw 16 does): two runs could both publish a generation; use a bucket without versioning`,
    );
  }
}

/** Creates generation `g`'s manifest; of two runs, exactly one does (the other fails with exit 4). */
export async function publishManifest(
  bucket: Bucket,
  keys: ChainKeys,
  g: number,
  text: string,
): Promise<void> {
  if (!await bucket.putIfAbsent(keys.manifest(g), new TextEncoder().encode(text))) {
    throw publishedMeanwhile(keys, g);
  }
}

function publishedMeanwhile(keys: ChainKeys, g: number): BlockdiffError {
  return new BlockdiffError(
    `generation ${g} of ${keys.loc.url} was published by another run meanwhile`,
    EXIT.locked,
  );
}

/**
 * A failure of a run publishing generation `g` that another run published meanwhile (whose cleanup may have
 * aborted this run's upload): that is the failure to report, exit 4; any other stays as it was.
 */
export async function lostTheRace(
  bucket: Bucket,
  keys: ChainKeys,
  g: number,
  err: unknown,
): Promise<unknown> {
  if (!(err instanceof BlockdiffError) || err.exitCode !== EXIT.failure && err.exitCode !== EXIT.locked) {
    return err;
  }
  const published = await bucket.getText(keys.manifest(g)).catch(() => null);
  return published === null ? err : publishedMeanwhile(keys, g);
}

/** `.ver` after the manifest (readers count manifests past `.ver`: a run may die between the two). */
export async function publishVersion(bucket: Bucket, keys: ChainKeys, g: number): Promise<void> {
  await bucket.put(keys.ver, new TextEncoder().encode(encodeVersion(g)));
}

/**
 * Removes what dead and losing runs left: uploads and data objects of published generations that their
 * manifests do not name, and those of unpublished generations older than a day (a live run's are younger).
 */
export async function removeLeftovers(o: { bucket: Bucket; keys: ChainKeys; log: (line: string) => void }) {
  const { bucket, keys } = o;
  const state = await readRemoteState(bucket, keys);
  const now = Date.now();
  for (const u of await bucket.listUploads(keys.base)) {
    const g = parseKey(keys, u.key)?.generation ?? NaN;
    if (!(g <= state.version) && now - u.initiated.getTime() < DEAD_AFTER_MS) continue;
    await bucket.abortUpload(u.key, u.uploadId);
    o.log(`aborted an unfinished upload of a dead run: ${keys.url(u.key)}`);
  }
  for (const [g, dataKeys] of state.data) {
    let named = new Set<string>();
    if (g <= state.version) {
      if (state.manifests.includes(g)) {
        const tokens = new Set(dataKeys.map((k) => parseKey(keys, k)?.token));
        if (dataKeys.length === 2 && tokens.size === 1) continue; // one run's digest and diff
        const text = await bucket.getText(keys.manifest(g));
        if (text === null) continue;
        const m = decodeManifest(text, keys.url(keys.manifest(g)));
        named = new Set([keys.named(m.diffFile), keys.named(m.digestFile)]);
      }
    }
    for (const key of dataKeys) {
      if (named.has(key)) continue;
      const info = state.objects.get(key)!;
      if (g > state.version && now - info.lastModified.getTime() < DEAD_AFTER_MS) continue;
      await bucket.remove(key);
      o.log(`removed a leftover of an incomplete run: ${keys.url(key)}`);
    }
  }
}
