/** The Dumper of a local file or block device: the engine's loop, in this process. */
import type { Dumper } from "../archiver/backup.ts";
import { dumpBlocks } from "../engine/dump.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import { openLocalSource } from "./local.ts";

export function localDumper(path: string, hasher: BlockHasher): Dumper {
  const opened = openLocalSource(path);
  return {
    description: opened.description,
    size: opened.size,
    dump: ({ blocksize, oldDigest, output, onProgress }) =>
      dumpBlocks({ source: opened.source, blocksize, oldDigest, hasher, sinks: output.sinks, onProgress }),
    close: () => opened.source.close(),
  };
}
