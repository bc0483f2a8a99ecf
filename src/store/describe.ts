/** What `blockdiff list` shows: the generations of a chain, or the chains of a directory. */
import * as fs from "node:fs";
import * as path from "node:path";
import { describeIoError } from "../errors.ts";
import { DIGEST_SIZE, HEADER_SIZE } from "../format/digest.ts";
import { Chain } from "./chain.ts";

export interface GenerationInfo {
  generation: number;
  date: string;
  sourceSize: number | null;
  blocks: number;
  blocksChanged: number | null;
  diffFile: string;
  diffBytes: number;
  compression: string;
}

export interface ChainInfo {
  name: string;
  dir: string;
  generations: GenerationInfo[];
  totalBytes: number;
}

export function describeChain(chain: Chain): ChainInfo {
  const last = chain.requireVersion();
  const generations: GenerationInfo[] = [];
  for (let g = 1; g <= last; g++) {
    const diff = chain.findDiff(g);
    const m = chain.readManifest(g);
    const diffSt = statOrFail(diff.path);
    const digestSt = statOrFail(chain.digestPath(g));
    generations.push({
      generation: g,
      date: m?.finishedAt ?? digestSt.mtime.toISOString(),
      sourceSize: m?.sourceSize ?? null,
      blocks: Math.max(0, (digestSt.size - HEADER_SIZE) / DIGEST_SIZE),
      blocksChanged: m?.blocksChanged ?? null,
      diffFile: path.basename(diff.path),
      diffBytes: diffSt.size,
      compression: diff.compression,
    });
  }
  const totalBytes = generations.reduce((a, g) => a + g.diffBytes, 0);
  return { name: chain.name, dir: chain.dir, generations, totalBytes };
}

/** The chains in `dir`: every `NAME.ver` there. */
export function findChains(dir: string): Chain[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch (err) {
    throw describeIoError(`reading directory ${dir}`, err);
  }
  return entries.filter((e) => e.endsWith(".ver") && e.length > 4).sort()
    .map((e) => new Chain(path.join(dir, e.slice(0, -4))));
}

function statOrFail(p: string): fs.Stats {
  try {
    return fs.statSync(p);
  } catch (err) {
    throw describeIoError(`${p}`, err);
  }
}

export function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}
