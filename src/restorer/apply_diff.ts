/**
 * Applies a diff stream to a file as the original blockdiff_merge did: every record at its offset, in stream
 * order (records out of order or at the same offset too: the later one wins). The stream is read 4 MiB at a
 * time and each record written straight from the read buffer (io/positioned_write.ts). A truncated stream
 * or a misaligned offset stops it (IntegrityError) after the records before it were written.
 */
import { describeIoError, IntegrityError } from "../errors.ts";
import { decodeBlocksize, HEADER_SIZE } from "../format/digest.ts";
import { RECORD_HEADER_SIZE } from "../format/diff.ts";
import { type ByteSource, readFull } from "../io/byte_source.ts";
import { writeAtSync } from "../io/positioned_write.ts";

const BUFFER_BYTES = 4 << 20;
const TWO_32 = 2 ** 32;

export async function applyDiff(
  src: ByteSource,
  fd: number,
  o: { what: string; target: string },
): Promise<void> {
  let buf = new Uint8Array(BUFFER_BYTES);
  let len = await readFull(src, buf, 0, HEADER_SIZE);
  if (len === 0) throw new IntegrityError(`${o.what}: empty (no block size header)`);
  const bs = decodeBlocksize(buf.subarray(0, len), o.what);
  if (2 * (bs + RECORD_HEADER_SIZE) > buf.length) buf = new Uint8Array(2 * (bs + RECORD_HEADER_SIZE));
  len = 0;
  let eof = false;
  const write = (offset: number, data: Uint8Array) => {
    try {
      writeAtSync(fd, data, offset);
    } catch (err) {
      throw describeIoError(`merging into ${o.target}`, err);
    }
  };
  for (;;) {
    const n = await readFull(src, buf, len, buf.length - len);
    eof = len + n < buf.length;
    len += n;
    let pos = 0;
    while (len - pos >= RECORD_HEADER_SIZE) {
      const offset = u32le(buf, pos) + u32le(buf, pos + 4) * TWO_32;
      const data = Math.min(bs, len - pos - RECORD_HEADER_SIZE);
      if (data < bs && !eof) break; // the rest comes with the next read
      if (offset % bs !== 0) {
        throw new IntegrityError(`${o.what}: record offset ${offset} is not a multiple of the block size`);
      }
      if (data === 0) {
        throw new IntegrityError(`${o.what}: record at offset ${offset} has no data (truncated)`);
      }
      write(offset, buf.subarray(pos + RECORD_HEADER_SIZE, pos + RECORD_HEADER_SIZE + data));
      pos += RECORD_HEADER_SIZE + data;
      if (data < bs) return; // a short block is the source's last: it ends the stream
    }
    if (eof) {
      if (len > pos) throw new IntegrityError(`${o.what}: truncated record header`);
      return;
    }
    buf.copyWithin(0, pos, len);
    len -= pos;
  }
}

const u32le = (b: Uint8Array, at: number) =>
  (b[at] | (b[at + 1] << 8) | (b[at + 2] << 16) | (b[at + 3] << 24)) >>> 0;
