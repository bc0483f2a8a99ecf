/** Compresses one piece of a stream into a self-contained gzip member or zstd frame. */
import * as zlib from "node:zlib";

/** compressPiece where it may run (a worker thread): what the gzip and zstd streams are given. */
export type PieceCompressor = (kind: "gzip" | "zstd", level: number, data: Uint8Array) => Promise<Uint8Array>;

type ZstdSync = {
  zstdCompressSync(b: Uint8Array, o: { params: Record<number, number> }): Uint8Array;
  constants: { ZSTD_c_compressionLevel: number };
};

export function compressPiece(kind: "gzip" | "zstd", level: number, data: Uint8Array): Uint8Array {
  const z = zlib as unknown as ZstdSync;
  return owned(
    kind === "gzip"
      ? zlib.gzipSync(data, { level })
      : z.zstdCompressSync(data, { params: { [z.constants.ZSTD_c_compressionLevel]: level } }),
  );
}

/** The bytes in an ArrayBuffer of their own (to be transferred): the buffer itself when it already is. */
function owned(b: Uint8Array): Uint8Array {
  return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength &&
      !(b.buffer instanceof SharedArrayBuffer)
    ? new Uint8Array(b.buffer, 0, b.byteLength)
    : new Uint8Array(b);
}
