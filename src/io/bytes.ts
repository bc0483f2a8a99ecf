/** A buffer worker threads can read and write without copies. */
export function sharedBytes(n: number): Uint8Array {
  return new Uint8Array(new SharedArrayBuffer(n));
}

/** Joins two byte arrays into a new one. */
export function concatBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Frees the memory of a buffer that nothing reads any more now rather than at some later garbage collection
 * (which can let hundreds of MB of such buffers pile up): ArrayBuffer.prototype.transfer(0) detaches it.
 * Only a view of a whole ArrayBuffer of its own is released; anything else is left to the collector.
 */
export function releaseBytes(b: Uint8Array): void {
  const buf = b.buffer as ArrayBuffer & { transfer?: (length: number) => ArrayBuffer };
  if (buf instanceof ArrayBuffer && b.byteOffset === 0 && b.byteLength === buf.byteLength) buf.transfer?.(0);
}
