/**
 * One SSH connection (ssh2) with OpenSSH-like host key checking: a known key passes, a changed key is always
 * refused, an unknown host is refused unless `acceptNew` (then its key is added to known_hosts).
 * Authentication: `-i` key, else ~/.ssh/id_{ed25519,ecdsa,rsa}, and the agent at SSH_AUTH_SOCK.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
// @ts-types="./ssh2.d.ts"
import type { Client, ClientChannel } from "ssh2";
import { BlockdiffError, describeIoError } from "../errors.ts";
import { noteGarbage } from "../runtime.ts";
import { appendHostKey, checkHostKey, hostPattern } from "./known_hosts.ts";

export interface SshOptions {
  host: string;
  port: number;
  user: string | null;
  identity: string | null;
  knownHosts: string;
  acceptNewHostKey: boolean;
}

export function defaultKnownHosts(): string {
  return path.join(os.homedir(), ".ssh", "known_hosts");
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: string;
}

export class SshConnection {
  private constructor(private readonly client: Client, readonly target: string) {}

  static async connect(o: SshOptions): Promise<SshConnection> {
    const user = o.user ?? os.userInfo().username;
    const target = `${user}@${hostPattern(o.host, o.port)}`;
    const auth: unknown[] = [];
    if (process.env.SSH_AUTH_SOCK) {
      auth.push({ type: "agent", username: user, agent: process.env.SSH_AUTH_SOCK });
    }
    for (const keyFile of o.identity ? [o.identity] : defaultKeys()) {
      let key: Buffer;
      try {
        key = fs.readFileSync(keyFile);
      } catch (err) {
        if (o.identity) throw describeIoError(`reading identity ${keyFile}`, err);
        continue;
      }
      auth.push({ type: "publickey", username: user, key });
    }
    let refusal: string | null = null;
    // Loaded only here: ssh2 adds ~20 MB to every run's memory, and only remote backups need it.
    const client: Client = new (await import("ssh2")).Client();
    return new Promise((resolve, reject) => {
      client.on("ready", () => resolve(new SshConnection(client, target)));
      client.on("error", (err: Error & { level?: string }) => {
        if (refusal) return reject(new BlockdiffError(refusal));
        const why = err.level === "client-authentication"
          ? "authentication failed (no key accepted; use -i KEY or an ssh agent)"
          : err.message;
        reject(new BlockdiffError(`ssh ${target}: ${why}`));
      });
      client.connect({
        host: o.host,
        port: o.port,
        username: user,
        readyTimeout: 20000,
        keepaliveInterval: 15000,
        keepaliveCountMax: 4,
        authHandler: auth.length ? auth as never : undefined,
        hostVerifier: (key: Buffer) => {
          const status = checkHostKey(o.knownHosts, o.host, o.port, key);
          if (status === "known") return true;
          if (status === "changed") {
            refusal = `ssh ${target}: host key does not match ${o.knownHosts} (changed key: possible ` +
              `man-in-the-middle attack); refusing to connect`;
            return false;
          }
          if (!o.acceptNewHostKey) {
            refusal =
              `ssh ${target}: unknown host key (not in ${o.knownHosts}); check it and run again with ` +
              `--accept-new-host-key`;
            return false;
          }
          appendHostKey(o.knownHosts, o.host, o.port, key);
          return true;
        },
      });
    });
  }

  /** Starts a remote command (already shell-quoted). */
  exec(command: string): Promise<ClientChannel> {
    return new Promise((resolve, reject) =>
      this.client.exec(
        command,
        (err, ch) => err ? reject(new BlockdiffError(`ssh ${this.target}: ${err.message}`)) : resolve(ch),
      )
    );
  }

  /**
   * A stream to a TCP port or a Unix socket as seen from the remote host (SSH port forwarding), e.g. the
   * database server's; nothing is opened or listening on either host.
   */
  forward(to: { socket: string } | { host: string; port: number }): Promise<ClientChannel> {
    return new Promise((resolve, reject) => {
      const done = (err: Error | undefined, ch: ClientChannel) => {
        if (!err) return resolve(ch);
        const where = "socket" in to ? to.socket : `${to.host}:${to.port}`;
        reject(new BlockdiffError(`ssh ${this.target}: cannot reach ${where} from there: ${err.message}`));
      };
      if ("socket" in to) this.client.openssh_forwardOutStreamLocal(to.socket, done);
      else this.client.forwardOut("127.0.0.1", 0, to.host, to.port, done);
    });
  }

  /** Runs a command to completion, with optional stdin, collecting its output. */
  async run(command: string, input?: Uint8Array | fs.ReadStream): Promise<ExecResult> {
    const ch = await this.exec(command);
    const out: Buffer[] = [];
    let err = "";
    ch.on("data", (d: Buffer) => out.push(d));
    ch.stderr.on("data", (d: Buffer) => err += d);
    const done = new Promise<ExecResult>((resolve) =>
      ch.on(
        "close",
        (code: number | null, signal: string | null) =>
          resolve({ code: code ?? null, signal: signal ?? null, stdout: Buffer.concat(out), stderr: err }),
      )
    );
    if (input instanceof Uint8Array) ch.end(input);
    else if (input) {
      input.pipe(ch);
      // Each chunk leaves its SSH packets behind: collected as they pile up (runtime.ts noteGarbage).
      input.on("data", (d: Buffer) => noteGarbage(d.length * 4));
    } else ch.end();
    return await done;
  }

  close(): void {
    this.client.end();
  }
}

function defaultKeys(): string[] {
  const dir = path.join(os.homedir(), ".ssh");
  return ["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => path.join(dir, k));
}
