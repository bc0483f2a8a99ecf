import * as fs from "node:fs";
import { fdReadable, FdSource } from "../io/byte_source.ts";
import { type Compression, decompressStream } from "../compress/codec.ts";
import { withReadErrors } from "../compress/read_errors.ts";
import { describeIoError, UsageError } from "../errors.ts";
import { applyDiff } from "../restorer/apply_diff.ts";
import { expectPositionals } from "./args.ts";
import { type Command, HELP_OPTION } from "./command.ts";

export const mergeCommand: Command = {
  name: "merge",
  summary: "low level: apply a diff from stdin to FILE (original blockdiff_merge)",
  help: `usage: blockdiff merge [-z|--gzip|--lzop|--zstd] [--sync] FILE < diff

Compatible with the original blockdiff_merge: writes every block of the diff read on stdin at its offset
in FILE (created if missing, never truncated), in the order of the stream (records out of order or at the
same offset are applied as they come, as the original does). A truncated stream or a misaligned offset
stops it with exit 3 after the records before it were written. Apply a chain's generations up to K in
order (after a prune: those left) to rebuild generation K, or use 'blockdiff restore', which does it in one
verified pass.

  -z, --gzip / --lzop / --zstd   the diff on stdin is compressed
  --sync                         fsync FILE before exiting (the original did not; neither does merge
                                 without it: run sync, or use restore, which always does)
  -h, --help                     this help

example:
  for i in 1 2 3; do blockdiff merge -z disk.img < lv.$i.gz; done`,
  options: [
    HELP_OPTION,
    { name: "gzip", short: "z", kind: "flag" },
    { name: "lzop", kind: "flag" },
    { name: "zstd", kind: "flag" },
    { name: "sync", kind: "flag" },
  ],
  async run(args) {
    const [file] = expectPositionals(args, 1, 1, "blockdiff merge [-z|--lzop|--zstd] [--sync] FILE < diff");
    const kinds = (["gzip", "lzop", "zstd"] as const).filter((k) => args.opts.has(k));
    if (kinds.length > 1) throw new UsageError(`merge: choose one of --gzip, --lzop, --zstd`);
    const compression: Compression = kinds.length ? kinds[0] : "none";
    const stdin = compression === "none"
      ? new FdSource(0, false)
      : decompressStream(fdReadable(0), compression);
    const src = withReadErrors(stdin, "diff on stdin");
    let fd: number;
    try {
      fd = fs.openSync(file, fs.constants.O_RDWR | fs.constants.O_CREAT, 0o600);
    } catch (err) {
      throw describeIoError(`opening ${file}`, err);
    }
    try {
      await applyDiff(src, fd, { what: "diff on stdin", target: file });
      if (args.opts.has("sync")) fs.fsyncSync(fd);
    } catch (err) {
      throw describeIoError(`merging into ${file}`, err);
    } finally {
      fs.closeSync(fd);
      await src.close();
    }
    return 0;
  },
};
