/** The Dumper of a local file or block device: the engine's loop, in this process. */
import type { Dumper } from "../archiver/backup.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import type { Parallelism } from "../engine/parallel.ts";
import { openLocalSource } from "./local.ts";

export function localDumper(path: string, par: Parallelism): Dumper {
  const opened = openLocalSource(path);
  return {
    description: opened.description,
    size: opened.size,
    dump: (req) =>
      dumpToStreams({
        source: opened.source,
        blocksize: req.blocksize,
        oldDigest: req.oldDigest?.cursor ?? null,
        par,
        diffOut: req.diffOut,
        digestOut: req.digestOut,
        compression: req.compression,
        level: req.level,
        onProgress: req.onProgress,
      }),
    close: () => opened.source.close(),
  };
}
