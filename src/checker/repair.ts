/**
 * `blockdiff repair`: sets NAME.ver to the newest generation K whose chain up to K verifies, and moves the
 * files of every later generation (bad ones, and those that depend on them) into a directory beside the
 * chain, NAME.repair-TIME, so nothing is deleted and the next backup continues from K. Generations are
 * checked in order, as `verify` checks them; an I/O error stops the repair before anything changes.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import type { BlockHasher } from "../engine/hasher.ts";
import { BlockdiffError, describeIoError, IntegrityError } from "../errors.ts";
import type { Chain } from "../store/chain.ts";
import { type ChainState, filesOf, scanFiles } from "../store/chain_state.ts";
import { fsyncDir, writeVersion } from "../store/commit.ts";
import { viewOf } from "../store/generations.ts";
import { type GenerationCheck, verifyGeneration } from "./verify.ts";

export interface RepairPlan {
  /** NAME.ver now: a number, null when missing, or what is wrong with it. */
  version: number | null | { unreadable: string };
  /** The newest generation whose chain up to it verifies (0: none). */
  good: number;
  checks: GenerationCheck[];
  /** Files of generations past `good`, to be moved aside. */
  moveAside: string[];
  /** Temporary files of dead runs (the caller holds the chain's lock), to be removed. */
  temps: string[];
}

export async function planRepair(
  chain: Chain,
  hasher: BlockHasher,
  onCheck: (c: GenerationCheck) => void,
): Promise<RepairPlan> {
  let version: RepairPlan["version"];
  try {
    version = chain.readVersionFile();
  } catch (err) {
    if (!(err instanceof IntegrityError)) throw err;
    version = { unreadable: err.message };
  }
  const files: Omit<ChainState, "version"> = scanFiles(chain);
  const present = new Set(files.generations.map((g) => g.generation));
  // the chain's members by the manifests present (a prune's absorbed generations are not), whatever .ver says
  const members = viewOf(chain, Math.max(0, ...present)).members;
  const checks: GenerationCheck[] = [];
  let good = 0;
  for (const g of members) {
    if (!present.has(g)) break;
    let c: GenerationCheck;
    try {
      c = { generation: g, ok: true, detail: await verifyGeneration(chain, g, good || null, hasher) };
    } catch (err) {
      if (!(err instanceof IntegrityError)) throw err; // unreadable is not bad: change nothing
      c = { generation: g, ok: false, detail: err.message };
    }
    checks.push(c);
    onCheck(c);
    if (!c.ok) break;
    good = g;
  }
  return {
    version,
    good,
    checks,
    moveAside: files.generations.filter((g) => g.generation > good).flatMap(filesOf),
    temps: files.temps,
  };
}

/** Whether carrying out `plan` would change anything. */
export function repairNeeded(p: RepairPlan): boolean {
  return p.version !== p.good || p.moveAside.length > 0 || p.temps.length > 0;
}

/**
 * Carries the plan out: temporary files removed, later generations' files moved into NAME.repair-TIME
 * (returned, or null), NAME.ver set last (moved there too when no generation verifies). Killed midway,
 * running it again finishes the job.
 */
export function applyRepair(chain: Chain, p: RepairPlan, now = new Date()): string | null {
  for (const t of p.temps) fs.rmSync(t, { force: true });
  const verToo = p.good === 0 && p.version !== null;
  let aside: string | null = null;
  if (p.moveAside.length || verToo) {
    aside = `${chain.path("")}.repair-${now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}`;
    try {
      fs.mkdirSync(aside, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw describeIoError(`creating ${aside}`, err);
    }
    for (const f of p.moveAside) move(f, aside);
    fsyncDir(aside);
    fsyncDir(chain.dir);
  }
  if (p.good > 0 && p.version !== p.good) writeVersion(chain, p.good);
  if (verToo) {
    move(chain.verPath, aside!);
    fsyncDir(chain.dir);
  }
  return aside;
}

function move(file: string, dir: string): void {
  try {
    fs.renameSync(file, path.join(dir, path.basename(file)));
  } catch (err) {
    throw err instanceof BlockdiffError ? err : describeIoError(`moving ${file} to ${dir}`, err);
  }
}
