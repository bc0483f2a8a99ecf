/**
 * Replicates a local chain's generations into a bucket (`blockdiff copy`, `backup --copy-to`): those past
 * the bucket's copy, oldest first, each published as remote_chain.ts describes: digest and diff uploaded
 * under this run's token while their SHA-256 is taken (and checked against the local manifest), then the
 * manifest created only if absent (the commit point: of two runs, exactly one publishes a generation), then
 * `.ver` (publish.ts). The local chain is only read, through descriptors, so backups and prunes go on
 * meanwhile. Afterwards what dead or losing runs left is removed (publish.ts).
 */
import { createHash, type Hash } from "node:crypto";
import * as fs from "node:fs";
import { lastBlockLength } from "../archiver/last_block.ts";
import { wrapReadError } from "../compress/read_errors.ts";
import { Progress } from "../display/progress.ts";
import { sha256OfFileOrNull } from "../io/file_sha.ts";
import { BlockdiffError, describeIoError, IntegrityError } from "../errors.ts";
import { decodeBlocksize, digestBlockCount, HEADER_SIZE } from "../format/digest.ts";
import { decodeManifest, encodeManifest, type Manifest, originalManifest } from "../format/manifest.ts";
import { type Chain, type OpenedDiffFile, readDiffFile } from "../store/chain.ts";
import { type ChainView, openStable, readChainView } from "../store/generations.ts";
import { VERSION } from "../version.ts";
import type { Bucket } from "./bucket.ts";
import { ChainKeys, newToken, readRemoteState } from "./layout.ts";
import {
  checkConditionalCreate,
  lostTheRace,
  publishManifest,
  publishVersion,
  removeLeftovers,
} from "./publish.ts";
import type { S3Location } from "./location.ts";
import { ObjectUpload, uploadFromFd } from "./upload.ts";

export interface CopyOptions {
  chain: Chain;
  dest: S3Location;
  bucket: Bucket;
  log: (line: string) => void;
}

export interface CopySummary {
  /** The generations published by this run. */
  copied: number[];
  /** The bucket's chain's last generation afterwards. */
  version: number;
  bytes: number;
}

export async function copyChain(o: CopyOptions): Promise<CopySummary> {
  const { chain, bucket } = o;
  const keys = new ChainKeys(o.dest);
  const view = readChainView(chain);
  await checkConditionalCreate(bucket, keys);
  const remote = await readRemoteState(bucket, keys);
  await checkSameChain(o, keys, view, remote.version);
  const todo = view.members.filter((g) => g > remote.version);
  const copied: number[] = [];
  let bytes = 0;
  for (const g of todo) {
    bytes += await copyGeneration(o, keys, g);
    await publishVersion(bucket, keys, g);
    copied.push(g);
    o.log(`copied generation ${g} of ${chain.location} to ${o.dest.url}`);
  }
  const version = copied.length ? copied[copied.length - 1] : remote.version;
  await removeLeftovers({ bucket, keys, log: o.log });
  return { copied, version, bytes };
}

/** The bucket's chain must be an earlier state of this one: its last generation's digest is ours. */
async function checkSameChain(o: CopyOptions, keys: ChainKeys, view: ChainView, remoteVersion: number) {
  if (remoteVersion === 0) return;
  if (remoteVersion > view.version) {
    throw new BlockdiffError(
      `${o.dest.url} is at generation ${remoteVersion}, past ${o.chain.location} (${view.version}): ` +
        `not a copy of this chain`,
    );
  }
  if (!view.members.includes(remoteVersion)) return; // pruned here: its digest is gone
  const text = await o.bucket.getText(keys.manifest(remoteVersion));
  if (text === null) return;
  const theirs = decodeManifest(text, keys.url(keys.manifest(remoteVersion))).digestSha256;
  const ours = view.manifests.get(remoteVersion)?.digestSha256 ??
    sha256OfFileOrNull(o.chain.digestPath(remoteVersion));
  if (theirs !== ours) {
    throw new BlockdiffError(
      `${o.dest.url} generation ${remoteVersion} differs from ${o.chain.location}'s: not a copy of this chain ` +
        `(copy to another name)`,
    );
  }
}

interface LocalGeneration {
  generation: number;
  view: ChainView;
  manifest: Manifest | null;
  digestFd: number;
  diff: OpenedDiffFile;
  close(): Promise<void>;
}

/** Uploads generation `g` and publishes its manifest; returns the bytes uploaded. */
async function copyGeneration(o: CopyOptions, keys: ChainKeys, g: number): Promise<number> {
  const { chain, bucket } = o;
  const local = await openStable<LocalGeneration>(chain, (view) => {
    const manifest = chain.readManifest(g);
    let digestFd = -1;
    try {
      digestFd = fs.openSync(chain.digestPath(g), "r");
    } catch (err) {
      throw (err as NodeJS.ErrnoException).code === "ENOENT"
        ? new IntegrityError(`digest file ${chain.digestPath(g)} is missing (the chain is broken)`)
        : describeIoError(`opening ${chain.digestPath(g)}`, err);
    }
    let diff: OpenedDiffFile;
    try {
      diff = chain.openDiffFile(g);
    } catch (err) {
      fs.closeSync(digestFd);
      throw err;
    }
    const close = () => {
      fs.closeSync(digestFd);
      fs.closeSync(diff.fd);
      return Promise.resolve();
    };
    return Promise.resolve({ generation: g, view, manifest, digestFd, diff, close });
  });
  const token = newToken();
  const digestKey = keys.digest(g, token), diffKey = keys.diff(g, token, local.diff.compression);
  const uploads: ObjectUpload[] = [];
  try {
    const digestSize = fs.fstatSync(local.digestFd).size, diffSize = fs.fstatSync(local.diff.fd).size;
    const progress = new Progress(`copy ${chain.name}.${g}`, digestSize + diffSize);
    let sent = 0;
    const send = async (fd: number, key: string, size: number, sha: Hash) => {
      const up = new ObjectUpload(bucket, key, {
        expectedBytes: size,
        explain: (err) => lostTheRace(bucket, keys, g, err),
      });
      uploads.push(up);
      await uploadFromFd(up, fd, (piece) => {
        sha.update(piece);
        progress.update(sent += piece.length);
      });
    };
    const digestSha = createHash("sha256"), diffSha = createHash("sha256");
    try {
      await send(local.digestFd, digestKey, digestSize, digestSha);
      await send(local.diff.fd, diffKey, diffSize, diffSha);
    } finally {
      progress.end();
    }
    const sums = { digestSha256: digestSha.digest("hex"), diffSha256: diffSha.digest("hex") };
    const m = local.manifest ?? await synthesize(chain, local, sums);
    for (const [field, value] of Object.entries(sums) as [keyof typeof sums, string][]) {
      if (m[field] !== value) {
        throw new IntegrityError(
          `${chain.manifestPath(g)}: ${field} differs from the file's (the local chain is corrupt: run ` +
            `'blockdiff verify ${chain.location}')`,
        );
      }
    }
    const published = encodeManifest({
      ...m,
      diffFile: diffKey.slice(o.dest.prefix.length),
      digestFile: digestKey.slice(o.dest.prefix.length),
    });
    await publishManifest(bucket, keys, g, published);
    return digestSize + diffSize;
  } catch (err) {
    // nothing of this run stays; what cannot be removed now (server down) is removed by a later run
    for (const up of uploads) await up.abort().catch(() => {});
    for (const key of [digestKey, diffKey]) await bucket.remove(key).catch(() => {});
    throw err;
  } finally {
    await local.close();
  }
}

/**
 * The records (changed blocks) of an opened diff, read through a descriptor of its own on the same file
 * (reopened by /proc/self/fd: the diff stays the one uploaded, whatever a prune does to its name).
 */
async function diffRecords(d: OpenedDiffFile): Promise<number> {
  let fd: number;
  try {
    fd = fs.openSync(`/proc/self/fd/${d.fd}`, "r");
  } catch (err) {
    throw describeIoError(`reading ${d.path}`, err);
  }
  const reader = await readDiffFile({ ...d, fd });
  let records = 0;
  try {
    while (await reader.next() !== null) records++;
  } catch (err) {
    throw wrapReadError(d.path, err);
  } finally {
    await reader.close();
  }
  return records;
}

/** A manifest for a generation the original tools wrote (they wrote none), from its files. */
async function synthesize(
  chain: Chain,
  local: LocalGeneration,
  sums: { digestSha256: string; diffSha256: string },
): Promise<Manifest> {
  const g = local.generation;
  const head = new Uint8Array(HEADER_SIZE);
  const bs = decodeBlocksize(
    head.subarray(0, fs.readSync(local.digestFd, head, 0, HEADER_SIZE, 0)),
    chain.name,
  );
  const blocks = digestBlockCount(fs.fstatSync(local.digestFd).size, chain.digestPath(g));
  return originalManifest({
    name: chain.name,
    generation: g,
    blocksize: bs,
    blocks,
    lastBlockLength: blocks === 0
      ? 0
      : await lastBlockLength({ chain, view: local.view, from: g, n: blocks, bs }),
    finishedAt: fs.fstatSync(local.digestFd).mtime.toISOString(),
    digestFile: "", // named when published
    digestSha256: sums.digestSha256,
    diff: {
      compression: local.diff.compression,
      bytes: fs.fstatSync(local.diff.fd).size,
      sha256: sums.diffSha256,
      records: await diffRecords(local.diff),
    },
    toolVersion: VERSION,
  });
}
