/**
 * The compression of a backup's new generation: what `--compress` says, else the chain's own (its newest
 * generation's), else none. A cron line without `--compress` thus continues a gzip chain with gzip instead of
 * silently switching it to none; a change that is asked for is said once.
 */
import { checkLevel, type Compression, DEFAULT_LEVEL } from "../compress/codec.ts";
import type { Chain } from "../store/chain.ts";

export interface CompressionChoice {
  compression: Compression;
  level: number;
  /** The line that says the chain's compression changes with this generation, or null. */
  change: string | null;
}

export function chooseCompression(o: {
  chain: Chain;
  /** The chain's last complete generation (0: a new chain). */
  version: number;
  /** `--compress` and `--compress-level`, when given. */
  given?: Compression;
  level?: number;
}): CompressionChoice {
  const current = o.version > 0 ? currentCompression(o.chain, o.version) : null;
  const compression = o.given ?? current?.compression ?? "none";
  const level = checkLevel(
    compression,
    o.level ?? (current?.compression === compression ? current.level : null) ?? DEFAULT_LEVEL[compression],
  );
  const change = current && current.compression !== compression
    ? `compression of ${o.chain.name} changes from ${current.compression} to ${compression} with generation ${
      o.version + 1
    } (--compress)`
    : null;
  return { compression, level, change };
}

/** Generation `gen`'s compression and level (the level from its manifest; null without one). */
function currentCompression(
  chain: Chain,
  gen: number,
): { compression: Compression; level: number | null } | null {
  try {
    const { compression } = chain.findDiff(gen);
    const m = chain.readManifest(gen);
    return { compression, level: m && m.compression === compression ? m.compressionLevel : null };
  } catch {
    return null; // the backup's own checks of the chain say what is wrong with it
  }
}
