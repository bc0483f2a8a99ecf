import * as fs from "node:fs";
import { isatty } from "node:tty";
import process from "node:process";
import { type Compression, DEFAULT_LEVEL } from "../compress/codec.ts";
import { dumpToStreams } from "../engine/dump_output.ts";
import { createParallelism } from "../engine/parallel.ts";
import { BlockdiffError, describeIoError, UsageError } from "../errors.ts";
import { DigestCursor } from "../format/digest_cursor.ts";
import { FdSource } from "../io/byte_source.ts";
import { FdWritable } from "../io/sink.ts";
import { openInheritedFd } from "../runtime.ts";
import { openLocalSource } from "../source/local.ts";
import { expectPositionals, stringOpt } from "./args.ts";
import { blockSizeRule } from "./block_size.ts";
import { type Command, HELP_OPTION } from "./command.ts";

export const dumpCommand: Command = {
  name: "dump",
  summary: "low level: write a diff of FILE (or stdin) against an old digest (original blockdiff_dump)",
  help:
    `usage: blockdiff dump [--block-size N] [-z|--gzip|--lzop|--zstd] [FILE] [5< old.md5] 6> new.md5 > diff

Compatible with the original blockdiff_dump: reads FILE (or stdin), writes the diff of the blocks whose
MD5 differs from the old digest (all blocks without one) to stdout and the new digest to fd 6.

  fd 5 / --old-digest FILE    digest of the previous generation (optional; its block size wins)
  fd 6 / --new-digest FILE    where the new digest goes (required)
  --block-size N              block size without an old digest (default env BLOCKSIZE, else 16384);
                              one that differs from the old digest's is an error
  -z, --gzip / --lzop / --zstd  compress the diff (gzip and zstd in-process, lzop runs lzop)
  -h, --help                  this help

examples:
  blockdiff dump /dev/vg0/lv 6> lv.1.md5 > lv.1
  blockdiff dump -z /dev/vg0/lv 5< lv.1.md5 6> lv.2.md5 > lv.2.gz`,
  options: [
    HELP_OPTION,
    { name: "block-size", aliases: ["blocksize"], kind: "value" },
    { name: "gzip", short: "z", kind: "flag" },
    { name: "lzop", kind: "flag" },
    { name: "zstd", kind: "flag" },
    { name: "old-digest", kind: "value" },
    { name: "new-digest", kind: "value" },
  ],
  async run(args) {
    const [file] = expectPositionals(
      args,
      0,
      1,
      "blockdiff dump [options] [FILE] 5< old.md5 6> new.md5 > diff",
    );
    const kinds = (["gzip", "lzop", "zstd"] as const).filter((k) => args.opts.has(k));
    if (kinds.length > 1) throw new UsageError(`dump: choose one of --gzip, --lzop, --zstd`);
    const compression: Compression = kinds[0] ?? "none";
    const blocksize = blockSizeRule({ option: stringOpt(args, "block-size"), env: process.env.BLOCKSIZE });
    if (isatty(1)) throw new UsageError("dump: refusing to write a binary diff to a terminal");

    const oldPath = stringOpt(args, "old-digest");
    const oldFd = oldPath !== undefined ? openPath(oldPath, "r") : openInheritedFd(5, "r");
    const newPath = stringOpt(args, "new-digest");
    const newFd = newPath !== undefined ? openPath(newPath, "w") : openInheritedFd(6, "w");
    if (newFd === null) {
      throw new UsageError("dump: no place for the new digest: open fd 6 or give --new-digest");
    }

    let old: DigestCursor | null = null, oldBs: number | null = null;
    if (oldFd !== null) {
      const opened = await DigestCursor.open(new FdSource(oldFd), oldPath ?? "old digest (fd 5)");
      [old, oldBs] = [opened.cursor, opened.blocksize];
    }
    const bs = blocksize(oldBs);
    const input = file !== undefined ? (await openLocalSource(file)).source : new FdSource(0, false);
    const par = createParallelism();
    try {
      await dumpToStreams({
        source: input,
        blocksize: bs,
        oldDigest: old,
        par,
        diffOut: new FdWritable(1, { sync: false, hash: false }),
        digestOut: new FdWritable(newFd, { sync: false, hash: false }),
        compression,
        level: DEFAULT_LEVEL[compression],
      });
    } catch (err) {
      throw err instanceof BlockdiffError ? err : describeIoError(`dump of ${file ?? "stdin"}`, err);
    } finally {
      await input.close();
      await old?.close();
      await par.close();
    }
    return 0;
  },
};

function openPath(p: string, mode: "r" | "w"): number {
  try {
    return fs.openSync(p, mode, 0o600);
  } catch (err) {
    throw describeIoError(`opening ${p}`, err);
  }
}
