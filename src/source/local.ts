/** A local file or block device opened for a dump, with its size when it can be known. */
import * as fs from "node:fs";
import { digestScan } from "../engine/dump_output.ts";
import type { Parallelism } from "../engine/parallel.ts";
import { BlockdiffError, describeIoError } from "../errors.ts";
import { sizeOf } from "../io/block_device.ts";
import { FdSource } from "../io/byte_source.ts";

export interface OpenedSource {
  source: FdSource;
  /** Size in bytes, or null (pipe, character device). */
  size: number | null;
  description: string;
}

/**
 * Opened off the main thread: a FIFO with no writer yet blocks in open(2), and the main thread must stay
 * free to handle SIGTERM meanwhile.
 */
export async function openLocalSource(path: string): Promise<OpenedSource> {
  let fd: number;
  try {
    fd = await new Promise<number>((resolve, reject) =>
      fs.open(path, "r", (err, fd) => err ? reject(err) : resolve(fd))
    );
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

/** The digest SHA-256 a full scan of the local `device` gives (--verify-tracking's reference). */
export async function digestScanOf(
  device: string,
  o: { blocksize: number; par: Parallelism },
): Promise<string> {
  const opened = await openLocalSource(device);
  try {
    return await digestScan({ source: opened.source, ...o });
  } finally {
    await opened.source.close();
  }
}
