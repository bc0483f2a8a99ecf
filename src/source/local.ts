/** A local file or block device opened for a dump, with its size when it can be known. */
import * as fs from "node:fs";
import { BlockdiffError, describeIoError } from "../errors.ts";
import { FdSource } from "../io/byte_source.ts";

export interface OpenedSource {
  source: FdSource;
  /** Size in bytes, or null (pipe, character device). */
  size: number | null;
  description: string;
}

export function openLocalSource(path: string): OpenedSource {
  let fd: number;
  try {
    fd = fs.openSync(path, "r");
  } catch (err) {
    throw describeIoError(`cannot open source ${path}`, err);
  }
  const st = fs.fstatSync(fd);
  if (st.isDirectory()) {
    fs.closeSync(fd);
    throw new BlockdiffError(`cannot back up ${path}: it is a directory`);
  }
  return { source: new FdSource(fd), size: sizeOf(st), description: path };
}

/** Regular files know their size; block devices report it in /sys (in 512-byte sectors). */
export function sizeOf(st: fs.Stats): number | null {
  if (st.isFile()) return st.size;
  if (st.isBlockDevice()) {
    const major = Math.floor(st.rdev / 256) & 0xfff, minor = (st.rdev & 0xff) | ((st.rdev >> 12) & 0xfff00);
    try {
      return Number(fs.readFileSync(`/sys/dev/block/${major}:${minor}/size`, "utf8").trim()) * 512;
    } catch {
      return null;
    }
  }
  return null;
}
