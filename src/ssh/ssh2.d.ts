// The part of ssh2's API that blockdiff uses (its @types package pulls in an old @types/node that clashes
// with Deno's). Referenced from connect.ts with a @ts-types comment.
import type { Duplex, Readable } from "node:stream";

export interface ClientChannel extends Duplex {
  stderr: Readable;
  on(event: "close", listener: (code: number | null, signal?: string) => void): this;
  on(event: string, listener: (...args: never[]) => void): this;
}

export interface ConnectConfig {
  host?: string;
  port?: number;
  /** A stream to the server instead of a TCP connection (a channel of a jump host). */
  sock?: Duplex;
  username: string;
  algorithms?: { serverHostKey?: string[] };
  readyTimeout?: number;
  keepaliveInterval?: number;
  keepaliveCountMax?: number;
  authHandler?: unknown;
  hostVerifier?: (key: Buffer) => boolean;
}

export class Client {
  on(event: "ready", listener: () => void): this;
  on(event: "error", listener: (err: Error & { level?: string }) => void): this;
  on(event: "close", listener: () => void): this;
  connect(config: ConnectConfig): this;
  exec(command: string, callback: (err: Error | undefined, channel: ClientChannel) => void): this;
  forwardOut(
    srcIP: string,
    srcPort: number,
    dstIP: string,
    dstPort: number,
    callback: (err: Error | undefined, channel: ClientChannel) => void,
  ): this;
  openssh_forwardOutStreamLocal(
    socketPath: string,
    callback: (err: Error | undefined, channel: ClientChannel) => void,
  ): this;
  end(): this;
}
