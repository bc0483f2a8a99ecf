/**
 * The controller's half of `--await-lock`: the agent says it is ready for lvcreate (frame R); this side
 * quiesces (takes the MySQL read lock through the SSH connection, or runs the snapshot wrapper up to its
 * gate), sends the go byte and then the old digest; the agent reports the snapshot created (frame C) and the
 * quiesce is released. A run that ends in between releases it as "not created".
 */
import { IntegrityError } from "../errors.ts";
import type { SnapshotQuiesce } from "../snapshot/session.ts";
import { GO_BYTE } from "./frames.ts";

export interface QuiesceHandshake {
  ready(): Promise<void>;
  created(): Promise<void>;
  /** Releases the quiesce if it is still held (the run failed before frame C). */
  finish(): Promise<void>;
}

export function quiesceHandshake(o: {
  quiesce: SnapshotQuiesce | null;
  /** Sends bytes to the agent's stdin. */
  send: (bytes: Uint8Array) => void;
  /** Starts streaming the old digest after the go byte. */
  sendOldDigest: () => void;
  description: string;
}): QuiesceHandshake {
  let release: ((created: boolean) => Promise<void>) | null = null;
  return {
    async ready() {
      if (!o.quiesce || release) throw new IntegrityError(`agent on ${o.description}: unexpected R frame`);
      release = await o.quiesce();
      o.send(new Uint8Array([GO_BYTE]));
      o.sendOldDigest();
    },
    async created() {
      const r = release;
      release = null;
      await r?.(true);
    },
    async finish() {
      const r = release;
      release = null;
      await r?.(false);
    },
  };
}
