/** What `blockdiff list` shows: the generations of a chain, or the chains of a directory. */
import * as fs from "node:fs";
import * as path from "node:path";
import { BlockdiffError, describeIoError } from "../errors.ts";
import { DIGEST_SIZE, HEADER_SIZE } from "../format/digest.ts";
import { Chain } from "./chain.ts";
import { readChainView } from "./generations.ts";

export interface GenerationInfo {
  generation: number;
  date: string;
  sourceSize: number | null;
  blocks: number;
  blocksChanged: number | null;
  diffFile: string;
  diffBytes: number;
  compression: string;
  /** Generations a prune removed whose blocks this one holds. */
  absorbed: number[];
}

export interface ChainInfo {
  name: string;
  dir: string;
  generations: GenerationInfo[];
  totalBytes: number;
}

/** The chain's generations; read again when a prune removed a file meanwhile (readers take no lock). */
export function describeChain(chain: Chain): ChainInfo {
  for (let attempt = 1;; attempt++) {
    try {
      return describeOnce(chain);
    } catch (err) {
      if (attempt >= 5 || !(err instanceof BlockdiffError)) throw err; // a broken chain stays broken
    }
  }
}

function describeOnce(chain: Chain): ChainInfo {
  const view = readChainView(chain);
  const generations: GenerationInfo[] = [];
  for (const g of view.members) {
    const diff = chain.findDiff(g);
    const m = chain.readManifest(g);
    const digestSt = statOrFail(chain.digestPath(g));
    generations.push({
      generation: g,
      date: m?.finishedAt ?? digestSt.mtime.toISOString(),
      sourceSize: m?.sourceSize ?? null,
      blocks: Math.max(0, (digestSt.size - HEADER_SIZE) / DIGEST_SIZE),
      blocksChanged: m?.blocksChanged ?? null,
      diffFile: path.basename(diff.path),
      diffBytes: chain.diffSize(diff),
      compression: diff.compression,
      absorbed: m?.absorbed ?? [],
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
