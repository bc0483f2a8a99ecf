/** The Dumper of a local file or block device: the engine's loop, in this process. */
import type { Dumper } from "../archiver/backup.ts";
import { dumpBlocks } from "../engine/dump.ts";
import { createDumpOutput } from "../engine/dump_output.ts";
import type { Parallelism } from "../engine/parallel.ts";
import { openLocalSource } from "./local.ts";

export function localDumper(path: string, par: Parallelism): Dumper {
  const opened = openLocalSource(path);
  return {
    description: opened.description,
    size: opened.size,
    async dump(req) {
      const output = createDumpOutput(req.diffOut, req.digestOut, req.compression, req.level, par.compress);
      try {
        await output.begin(req.blocksize);
        const r = await dumpBlocks({
          source: opened.source,
          blocksize: req.blocksize,
          oldDigest: req.oldDigest?.cursor ?? null,
          hasher: par.hasher,
          sinks: output.sinks,
          onProgress: req.onProgress,
        });
        await output.finish();
        return r;
      } catch (err) {
        output.abort();
        throw err;
      }
    },
    close: () => opened.source.close(),
  };
}
