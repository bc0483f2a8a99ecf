/** The writers of a chain's store: its own (a chain in a bucket), else the local directory's. */
import type { Chain } from "./chain.ts";
import { LocalFoldWriter } from "./fold_writer.ts";
import { LocalGenerationWriter } from "./generation_writer.ts";
import type { ChainWriters } from "./writer_types.ts";

export function writersOf(chain: Chain): ChainWriters {
  return chain.writers ?? {
    newGeneration: (o) => Promise.resolve(new LocalGenerationWriter(chain, o)),
    newFold: (o) => Promise.resolve(new LocalFoldWriter(chain, o)),
  };
}
