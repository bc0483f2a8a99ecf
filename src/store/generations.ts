/**
 * Which generations make up a chain: 1..`.ver`, less those a prune removed. A removed generation is named
 * in the `absorbed` list of the manifest of the generation whose diff now holds its blocks, so numbers stay
 * stable and a chain may start past 1; a generation that is missing without being absorbed is a broken
 * chain, reported where its files are needed. A prune changes the chain while readers read it: they open
 * what they need and check that the chain did not change meanwhile (`openStable`).
 */
import { BlockdiffError, IntegrityError, UsageError } from "../errors.ts";
import type { Manifest } from "../format/manifest.ts";
import type { Chain } from "./chain.ts";
import { scanFiles } from "./chain_state.ts";

export interface ChainView {
  /** What NAME.ver says. */
  version: number;
  /** The chain's generations, in increasing order. */
  members: number[];
  /** A generation prune removed -> the member whose diff holds its blocks. */
  absorbedBy: Map<number, number>;
  /** Each member's manifest (null: none, or unreadable). */
  manifests: Map<number, Manifest | null>;
}

/** The chain as it is now; an error when it does not exist or NAME.ver is missing. */
export function readChainView(chain: Chain): ChainView {
  return viewOf(chain, chain.requireVersion());
}

/** The chain's members up to `version`, from the manifests of the generations present. */
export function viewOf(chain: Chain, version: number): ChainView {
  const read = new Map<number, Manifest | null>();
  for (const g of scanFiles(chain).generations) {
    if (g.generation > version || !g.manifest) continue;
    read.set(g.generation, readQuietly(chain, g.generation));
  }
  const absorbed = new Set<number>();
  for (const m of read.values()) for (const a of m?.absorbed ?? []) absorbed.add(a);
  const members: number[] = [], manifests = new Map<number, Manifest | null>(), absorbedBy = new Map();
  for (let g = 1; g <= version; g++) {
    if (absorbed.has(g)) continue;
    members.push(g);
    const m = read.get(g) ?? null;
    manifests.set(g, m);
    for (const a of m?.absorbed ?? []) absorbedBy.set(a, g);
  }
  return { version, members, absorbedBy, manifests };
}

/** A corrupt manifest absorbs nothing here; verify reports it. */
function readQuietly(chain: Chain, g: number): Manifest | null {
  try {
    return chain.readManifest(g);
  } catch (err) {
    if (err instanceof BlockdiffError) return null;
    throw err;
  }
}

/** Resolves `--generation K` (default: the newest) against the chain's members. */
export function resolveGeneration(chain: Chain, view: ChainView, requested: number | undefined): number {
  if (requested === undefined) return view.version;
  const holder = view.absorbedBy.get(requested);
  if (holder !== undefined) {
    throw new UsageError(
      `generation ${requested} of ${chain.name} was removed by prune (its blocks are in generation ${holder}); ` +
        `generations: ${describeMembers(view.members)}`,
    );
  }
  if (!view.members.includes(requested)) {
    throw new UsageError(
      `generation ${requested} does not exist in ${chain.name} (generations: ${
        describeMembers(view.members)
      })`,
    );
  }
  return requested;
}

/** `1..4, 7, 9..12` */
export function describeMembers(members: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < members.length;) {
    let j = i;
    while (j + 1 < members.length && members[j + 1] === members[j] + 1) j++;
    parts.push(j === i ? `${members[i]}` : `${members[i]}..${members[j]}`);
    i = j + 1;
  }
  return parts.join(", ") || "none";
}

/** The member before `g` (null for the chain's first): what `g`'s diff is relative to. */
export function previousMember(view: ChainView, g: number): number | null {
  const i = view.members.indexOf(g);
  return i > 0 ? view.members[i - 1] : null;
}

/** What readers hold the chain to: the members up to `upTo` and their manifests. */
function fingerprint(view: ChainView, upTo: number): string {
  return view.members.filter((g) => g <= upTo).map((g) => `${g}:${view.manifests.get(g)?.checksum ?? "-"}`)
    .join(" ");
}

const ATTEMPTS = 20;

/**
 * Opens what a reader needs (`open`, given the chain as it is) and checks that the chain's members up to
 * the generation it returns did not change meanwhile; when a prune changed them, closes and opens again.
 * Files a prune replaces or deletes stay readable through the descriptors opened here.
 */
export async function openStable<T extends { generation: number; close(): Promise<void> }>(
  chain: Chain,
  open: (view: ChainView) => Promise<T>,
): Promise<T> {
  for (let attempt = 1;; attempt++) {
    const view = readChainView(chain);
    let opened: T;
    try {
      opened = await open(view);
    } catch (err) {
      // a file a prune removed between reading the chain and opening it: read the chain again
      if (attempt < ATTEMPTS && err instanceof IntegrityError && changed(chain, view)) continue;
      throw err;
    }
    const now = readChainView(chain);
    if (fingerprint(now, opened.generation) === fingerprint(view, opened.generation)) return opened;
    await opened.close();
    if (attempt >= ATTEMPTS) {
      throw new BlockdiffError(`chain ${chain.path("")} kept changing while it was being opened`);
    }
  }
}

function changed(chain: Chain, view: ChainView): boolean {
  try {
    const now = readChainView(chain);
    return fingerprint(now, Infinity) !== fingerprint(view, Infinity) || now.version !== view.version;
  } catch {
    return true;
  }
}
