/** Decompressor failures ("incorrect header check", "unexpected end of file") mean a corrupt file. */
import { BlockdiffError, describeIoError, IntegrityError } from "../errors.ts";
import type { ByteSource } from "../io/byte_source.ts";

export function wrapReadError(what: string, err: unknown): Error {
  if (err instanceof BlockdiffError) return err;
  const e = err as NodeJS.ErrnoException;
  if (
    e?.code?.startsWith("Z_") || e?.code === "ERR_ZSTD" ||
    /zstd|unexpected end of file/i.test(e?.message ?? "")
  ) {
    return new IntegrityError(`${what}: corrupt compressed data (${e.message})`);
  }
  return describeIoError(`reading ${what}`, err);
}

/** A source whose read errors say which file was corrupt or unreadable. */
export function withReadErrors(src: ByteSource, what: string): ByteSource {
  const wrap = (err: unknown) => Promise.reject(wrapReadError(what, err));
  return {
    read: (buf, off, len) => src.read(buf, off, len).catch(wrap),
    view: src.view && ((len) => src.view!(len).catch(wrap)),
    close: () => src.close(),
  };
}
