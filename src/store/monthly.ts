/**
 * `--monthly` chains: `backup --monthly` writes chain NAME-YYYYMM (a new full backup every month). The
 * commands that read a chain find them from the base name NAME: the newest month, unless the month is named
 * (`NAME-YYYYMM`).
 */
import * as fs from "node:fs";
import { BlockdiffError, describeIoError } from "../errors.ts";
import { Chain } from "./chain.ts";

/** The chain `backup --monthly` writes for base name `base` in the month of `d` (local time). */
export function monthlyChainName(base: string, d: Date): string {
  return `${base}-${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, "0")}`;
}

/** Chain `base`'s monthly chains NAME-YYYYMM (those with a NAME-YYYYMM.ver), oldest month first. */
export function monthlyChains(base: Chain): Chain[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(base.dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw describeIoError(`reading directory ${base.dir}`, err);
  }
  const month = new RegExp(`^${escapeRegExp(base.name)}-(\\d{4})(0[1-9]|1[0-2])\\.ver$`);
  return entries.filter((e) => month.test(e)).sort().map((e) =>
    new Chain(base.path(e.slice(base.name.length, -4)))
  );
}

/**
 * The chain a reading command means by `spec`: the chain itself when it exists (its NAME.ver or generation
 * 1's digest), else the newest of its monthly chains, else `spec` (the command then reports that there is no
 * such chain). With `monthly` (the command's `--monthly`), `spec` is a base name: its newest monthly chain, or
 * an error when it has none.
 */
export function resolveChain(spec: string, o: { monthly?: boolean } = {}): Chain {
  const chain = new Chain(spec);
  const months = monthsOf(chain, o);
  return months.length ? months[months.length - 1] : chain;
}

/**
 * The monthly chains `spec` stands for (as `resolveChain`), oldest first: none when `spec` is a chain itself
 * and `monthly` is not given; an error when `monthly` is given and there are none.
 */
export function monthsOf(chain: Chain, o: { monthly?: boolean } = {}): Chain[] {
  if (!o.monthly && chainExists(chain)) return [];
  const months = monthlyChains(chain);
  if (o.monthly && !months.length) {
    throw new BlockdiffError(`no monthly backup chain ${chain.path("-YYYYMM")} (no ${chain.path("-*.ver")})`);
  }
  return months;
}

export function chainExists(chain: Chain): boolean {
  return fs.existsSync(chain.verPath) || fs.existsSync(chain.digestPath(1));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
