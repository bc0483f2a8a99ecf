/**
 * What is on disk for a chain (`NAME.ver`, each generation's files, temporary files), and the rule every
 * command that writes applies before it changes anything: `.ver` must agree with the generations present.
 * A generation at `.ver` + 1 without a manifest is what a killed run leaves (the original tools write their
 * files under the final names; blockdiff renames the manifest last) and may be removed, as may files of a
 * generation a prune removed (generations.ts); anything else past `.ver`, a missing `.ver` beside
 * generation files, or a generation of the chain with missing files makes the command refuse (exit 3) and
 * change nothing: `blockdiff repair` sets `.ver` from what verifies.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BY_EXTENSION } from "../compress/codec.ts";
import { BlockdiffError, describeIoError, IntegrityError } from "../errors.ts";
import { digestBlockCount } from "../format/digest.ts";
import type { Chain, DiffFile } from "./chain.ts";

export interface GenerationFiles {
  generation: number;
  diffs: DiffFile[];
  digest: string | null;
  manifest: string | null;
}

export interface ChainState {
  /** The number in NAME.ver; null when there is no NAME.ver. */
  version: number | null;
  /** Generations with at least one file, in increasing order. */
  generations: GenerationFiles[];
  /** Files of the chain under a temporary name (`NAME.3.md5.tmp-PID`, `NAME.ver.tmp-PID`). */
  temps: string[];
}

const GENERATION_FILE = /^([1-9]\d{0,14})(\.gz|\.lzop|\.zst|\.md5|\.json)?$/;
/** Besides generations: NAME.ver, the run lock, the journal, the last runs `status` reads (monitor/last_run.ts). */
const OTHER_FILE = /^(ver|lock|journal|last-(backup|prune|verify)\.json)$/;
const TEMP_FILE = /^(ver|journal|[1-9]\d{0,14}(\.gz|\.lzop|\.zst|\.md5|\.json)?)\.tmp-\d+$/;

/** Reads the chain's directory (and NAME.ver: a garbage or unreadable one fails here). */
export function scanChain(chain: Chain): ChainState {
  return { ...scanFiles(chain), version: chain.readVersionFile() };
}

/** The chain's generation and temporary files, whatever NAME.ver says. */
export function scanFiles(chain: Chain): Omit<ChainState, "version"> {
  let entries: string[];
  try {
    entries = fs.readdirSync(chain.dir);
  } catch (err) {
    throw describeIoError(`reading directory ${chain.dir}`, err);
  }
  const byGen = new Map<number, GenerationFiles>();
  const temps: string[] = [];
  const prefix = chain.name + ".";
  for (const e of entries) {
    if (!e.startsWith(prefix)) continue;
    const rest = e.slice(prefix.length), p = path.join(chain.dir, e);
    if (TEMP_FILE.test(rest)) {
      temps.push(p);
      continue;
    }
    const m = GENERATION_FILE.exec(rest);
    if (!m) continue;
    const g = Number(m[1]);
    let files = byGen.get(g);
    if (!files) byGen.set(g, files = { generation: g, diffs: [], digest: null, manifest: null });
    const ext = m[2] ?? "";
    if (ext === ".md5") files.digest = p;
    else if (ext === ".json") files.manifest = p;
    else files.diffs.push({ path: p, compression: BY_EXTENSION.get(ext)! });
  }
  return {
    generations: [...byGen.values()].sort((a, b) => a.generation - b.generation),
    temps: temps.sort(),
  };
}

/**
 * Whether `p` is, or would be, a file of the chain: a chain file's name in the chain's directory (also one
 * that does not exist yet), or another name of one of its files (a hard link, a symbolic link).
 */
export function isChainFile(chain: Chain, p: string): boolean {
  const rest = path.basename(p).startsWith(chain.name + ".")
    ? path.basename(p).slice(chain.name.length + 1)
    : null;
  if (rest !== null && (GENERATION_FILE.test(rest) || TEMP_FILE.test(rest) || OTHER_FILE.test(rest))) {
    if (sameFile(path.dirname(p), chain.dir)) return true;
  }
  let target: fs.Stats;
  try {
    target = fs.statSync(p);
  } catch {
    return false;
  }
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(chain.dir).filter((e) => {
      const rest = e.startsWith(chain.name + ".") ? e.slice(chain.name.length + 1) : null;
      return rest !== null && (GENERATION_FILE.test(rest) || TEMP_FILE.test(rest) || OTHER_FILE.test(rest));
    });
  } catch { /* no chain there */ }
  return entries.some((e) => sameFile(path.join(chain.dir, e), target));
}

function sameFile(p: string, other: string | fs.Stats): boolean {
  try {
    const a = fs.statSync(p), b = typeof other === "string" ? fs.statSync(other) : other;
    return a.dev === b.dev && a.ino === b.ino;
  } catch {
    return false;
  }
}

/** Every file of a generation, for messages and for moving it. */
export function filesOf(g: GenerationFiles): string[] {
  return [
    ...g.diffs.map((d) => d.path),
    ...(g.digest ? [g.digest] : []),
    ...(g.manifest ? [g.manifest] : []),
  ];
}

/**
 * The rule before a command writes (the caller holds the chain's lock): returns the leftovers of killed
 * runs it may remove (temporary files, generation `.ver` + 1 without a manifest), or throws IntegrityError
 * saying what disagrees with `.ver`.
 */
export function leftoversBeforeWrite(
  chain: Chain,
  s: ChainState,
  chainOf: { members: number[]; absorbedBy: Map<number, number> },
): string[] {
  const shown = (files: string[]) => files.map((f) => path.basename(f)).join(", ");
  const refuse = (what: string) =>
    new IntegrityError(
      `chain ${chain.path("")}: ${what}; nothing was changed (run 'blockdiff repair ${chain.path("")}' ` +
        `to set ${chain.name}.ver to the newest generation whose chain verifies)`,
    );
  const ver = s.version ?? 0;
  if (s.version === null && s.generations.length) {
    const files = s.generations.flatMap(filesOf);
    throw refuse(
      `${chain.name}.ver is missing but generation files exist (${shown(files.slice(0, 4))}` +
        `${files.length > 4 ? ", ..." : ""})`,
    );
  }
  const present = new Map(s.generations.map((g) => [g.generation, g]));
  for (const g of chainOf.members) {
    const files = present.get(g);
    if (!files || files.diffs.length === 0) {
      throw refuse(`${chain.name}.ver says ${ver} but generation ${g} has no diff file`);
    }
    if (files.diffs.length > 1) {
      throw refuse(`generation ${g} has more than one diff file (${shown(files.diffs.map((d) => d.path))})`);
    }
    if (!files.digest) throw refuse(`${chain.name}.ver says ${ver} but generation ${g} has no digest file`);
  }
  const leftovers = [...s.temps];
  for (const files of s.generations) {
    // what a prune killed before it deleted them leaves of the generations it removed
    if (chainOf.absorbedBy.has(files.generation)) leftovers.push(...filesOf(files));
    if (files.generation <= ver) continue;
    if (files.generation > ver + 1) {
      throw refuse(
        `${chain.name}.ver says ${ver} but files of generation ${files.generation} exist ` +
          `(${shown(filesOf(files))})`,
      );
    }
    if (files.manifest) {
      throw refuse(
        `${chain.name}.ver says ${ver} but generation ${files.generation} ` +
          (manifestMatchesSizes(chain, files)
            ? `is complete (${path.basename(files.manifest)} matches its files)`
            : `has a manifest (${path.basename(files.manifest)})`),
      );
    }
    leftovers.push(...filesOf(files));
  }
  return leftovers;
}

/** Whether a generation's manifest decodes and its diff and digest have the sizes it records. */
export function manifestMatchesSizes(chain: Chain, files: GenerationFiles): boolean {
  try {
    const m = chain.readManifest(files.generation);
    if (!m || !files.digest || files.diffs.length !== 1) return false;
    const diff = files.diffs[0];
    return path.basename(diff.path) === m.diffFile && fs.statSync(diff.path).size === m.bytesWritten &&
      digestBlockCount(fs.statSync(files.digest).size, files.digest) === m.blocks;
  } catch (err) {
    if (err instanceof BlockdiffError || (err as NodeJS.ErrnoException).code) return false;
    throw err;
  }
}
