/**
 * Worker thread entry: hashes parts of shared buffers (claimed along with the main thread, hasher.ts),
 * compresses diff pieces into independent gzip members / zstd frames, and writes runs of a shared buffer
 * at file positions (restore's image: the main thread goes on reading meanwhile). Listed as an extra entry point in
 * scripts/build.ts.
 */
import { parentPort } from "node:worker_threads";
import { compressPiece } from "../compress/piece.ts";
import { SharedParts } from "./hasher.ts";
import { writeAtSync } from "../io/positioned_write.ts";
import type { TaskMessage } from "./worker_pool.ts";

parentPort!.on("message", (m: TaskMessage) => {
  try {
    if (m.op === "md5") {
      const buf = new Uint8Array(m.buf, m.offset, m.length);
      const out = new Uint8Array(m.out, m.outOffset, Math.ceil(m.length / m.blocksize) * 16);
      const parts = new SharedParts(buf, m.length, m.blocksize, out, new Int32Array(m.ctl), m.partBlocks);
      while (parts.hashNext());
      parentPort!.postMessage({ id: m.id });
    } else if (m.op === "write") {
      const buf = new Uint8Array(m.buf);
      for (const [at, len, position] of m.runs) writeAtSync(m.fd, buf.subarray(at, at + len), position);
      parentPort!.postMessage({ id: m.id });
    } else {
      const data = compressPiece(m.kind, m.level, m.data);
      // The input goes back too, for the next piece: no garbage per piece on that side.
      parentPort!.postMessage({ id: m.id, data, input: m.data }, [
        data.buffer as ArrayBuffer,
        m.data.buffer as ArrayBuffer,
      ]);
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException)?.code;
    parentPort!.postMessage({ id: m.id, error: String((err as Error)?.message ?? err), code });
  }
});
