/** Compresses one piece of a stream into a self-contained gzip member or zstd frame. */
import * as zlib from "node:zlib";

type ZstdSync = {
  zstdCompressSync(b: Uint8Array, o: { params: Record<number, number> }): Uint8Array;
  constants: { ZSTD_c_compressionLevel: number };
};

export function compressPiece(kind: "gzip" | "zstd", level: number, data: Uint8Array): Uint8Array {
  if (kind === "gzip") return new Uint8Array(zlib.gzipSync(data, { level }));
  const z = zlib as unknown as ZstdSync;
  return new Uint8Array(
    z.zstdCompressSync(data, { params: { [z.constants.ZSTD_c_compressionLevel]: level } }),
  );
}
