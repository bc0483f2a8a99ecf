/**
 * One SSH connection (ssh2, in-process) set up as ssh would: the host resolved through ~/.ssh/config
 * (ssh_config.ts), reached directly or through its ProxyJump hosts (each with its own config, host key
 * check and authentication, the next connection carried in a channel of the previous one), and OpenSSH-like
 * host key checking: a known key passes, a changed or revoked key is always refused, an unknown host is
 * refused unless accepting new keys (--accept-new-host-key, StrictHostKeyChecking accept-new or no), then
 * its key is added to known_hosts. Authentication: the agent at SSH_AUTH_SOCK (not with IdentitiesOnly),
 * then `-i`, IdentityFile, or ~/.ssh/id_{ed25519,ecdsa,rsa}.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
// @ts-types="./ssh2.d.ts"
import type { Client, ClientChannel } from "ssh2";
import { onCleanup } from "../cleanup.ts";
import { BlockdiffError, describeIoError } from "../errors.ts";
import { noteGarbage } from "../runtime.ts";
import {
  appendHostKey,
  checkHostKey,
  fingerprint,
  hostPattern,
  keyType,
  knownKeyTypes,
} from "./known_hosts.ts";
import { homeDir } from "../local_user.ts";
import {
  type HostRequest,
  loadSshConfig,
  type ResolvedHost,
  resolveHost,
  type SshConfig,
} from "./ssh_config.ts";

export interface SshOptions {
  /** The host as given: a name, an address, or a Host alias of the ssh config. */
  host: string;
  /** The port given with the source; null: not given (the config's Port applies, else 22). */
  port: number | null;
  user: string | null;
  identity: string | null;
  /** Instead of the config's UserKnownHostsFile (default ~/.ssh/known_hosts). */
  knownHosts: string | null;
  acceptNewHostKey: boolean;
  /** `-F FILE` (`none`: no config); null: env BLOCKDIFF_SSH_CONFIG, else ~/.ssh/config. */
  config: string | null;
  /** Where warnings ("warning: ...") and notes about the connection go; default stderr. */
  log?: (line: string) => void;
}

export interface ExecResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: string;
}

/** ProxyJump hops followed at most (a config whose hops jump through each other would loop). */
const MAX_HOPS = 8;

/** ssh2's host key algorithms in its order of preference. */
const HOST_KEY_ALGORITHMS = [
  "ssh-ed25519",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "rsa-sha2-512",
  "rsa-sha2-256",
  "ssh-rsa",
];

interface Setup {
  config: SshConfig;
  /** Every client opened so far, first hop first. */
  opened: Client[];
  knownHosts: string | null;
  acceptNewHostKey: boolean;
  log: (line: string) => void;
  /** The user the target host was logged into as (from the source, the ssh config, or the uid). */
  targetUser?: string;
}

export class SshConnection {
  private constructor(
    /** The jump hosts' clients, then the target's. */
    private readonly clients: Client[],
    readonly target: string,
    /** The user logged in as on the target host. */
    readonly user: string,
    private readonly forgetCleanup: () => void,
  ) {}

  private get client(): Client {
    return this.clients[this.clients.length - 1];
  }

  static async connect(o: SshOptions): Promise<SshConnection> {
    const log = o.log ?? ((line: string) => process.stderr.write(`blockdiff: ${line}\n`));
    const setup: Setup = {
      config: loadSshConfig(o.config),
      opened: [],
      knownHosts: o.knownHosts,
      acceptNewHostKey: o.acceptNewHostKey,
      log,
    };
    // on a signal the process exits at once: the sockets go with it, but say goodbye where we can
    const forgetCleanup = onCleanup(() => closeAll(setup.opened));
    try {
      const target = await connectHost(
        setup,
        {
          host: o.host,
          user: o.user,
          port: o.port,
          identity: o.identity,
          knownHosts: o.knownHosts,
          acceptNewHostKey: o.acceptNewHostKey,
          proxyJump: null,
        },
        0,
        null,
      );
      const clients = [...setup.opened];
      // the target's connection gone (error, end): the hops it went through are closed too
      clients[clients.length - 1].on("close", () => closeAll(clients.slice(0, -1)));
      return new SshConnection(clients, target, setup.targetUser!, forgetCleanup);
    } catch (err) {
      closeAll(setup.opened);
      forgetCleanup();
      throw err;
    }
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

  /** Closes the connection and those of the jump hosts it went through. */
  close(): void {
    closeAll(this.clients);
    this.forgetCleanup();
  }
}

/** Ends the clients, the last (innermost) first. */
function closeAll(clients: Client[]): void {
  for (const c of [...clients].reverse()) {
    try {
      c.end();
    } catch { /* already gone */ }
  }
}

/**
 * Connects to one host (after its ProxyJump hops, recursively); returns its `user@host` for messages.
 * `hopOf`: the host this one is a jump host for, named in its messages.
 */
async function connectHost(s: Setup, req: HostRequest, hops: number, hopOf: string | null): Promise<string> {
  const h = resolveHost(s.config, req, s.log);
  const name = `${h.user}@${hostPattern(h.alias, h.port)}`;
  const target = hopOf ? `${name} (jump host for ${hopOf})` : name;
  let sock: ClientChannel | undefined;
  let via: string | null = null;
  if (h.proxyJump.length) {
    if (hops >= MAX_HOPS) {
      throw new BlockdiffError(
        `ssh ${target}: more than ${MAX_HOPS} ProxyJump hops (do the hosts of ${h.configFile} jump through ` +
          `each other?)`,
      );
    }
    // as ssh does: the last hop is reached through the ones before it (or through its own ProxyJump)
    const last = h.proxyJump[h.proxyJump.length - 1];
    via = await connectHost(
      s,
      {
        host: last.host,
        user: last.user,
        port: last.port,
        identity: null,
        knownHosts: s.knownHosts,
        acceptNewHostKey: s.acceptNewHostKey,
        proxyJump: h.proxyJump.length > 1 ? h.proxyJump.slice(0, -1) : null,
      },
      hops + 1,
      name,
    );
    const jump = s.opened[s.opened.length - 1];
    sock = await new Promise<ClientChannel>((resolve, reject) =>
      jump.forwardOut("127.0.0.1", 0, h.hostName, h.port, (err, ch) => {
        if (!err) return resolve(ch);
        reject(
          new BlockdiffError(
            `ssh ${target}: the jump host ${via} cannot reach ${h.hostName}:${h.port}: ${
              err.message.replace(/^\(SSH\) /, "")
            }`,
          ),
        );
      })
    );
  }
  await handshake(s, h, target, sock, via);
  if (hopOf === null) s.targetUser = h.user;
  return name;
}

function authMethods(h: ResolvedHost): unknown[] {
  const auth: unknown[] = [];
  if (process.env.SSH_AUTH_SOCK && !h.identitiesOnly) {
    auth.push({ type: "agent", username: h.user, agent: process.env.SSH_AUTH_SOCK });
  }
  for (const keyFile of h.identityFiles) {
    let key: Buffer;
    try {
      key = fs.readFileSync(keyFile);
    } catch (err) {
      if (keyFile === h.requiredIdentity) throw describeIoError(`reading identity ${keyFile}`, err);
      continue; // as ssh: an IdentityFile that is not there is skipped
    }
    auth.push({ type: "publickey", username: h.user, key });
  }
  return auth;
}

/** The SSH handshake with `h`, over `sock` (a channel of the jump host) or a TCP connection of its own. */
async function handshake(
  s: Setup,
  h: ResolvedHost,
  target: string,
  sock: ClientChannel | undefined,
  via: string | null,
): Promise<void> {
  const auth = authMethods(h);
  const keyName = h.hostKeyAlias ?? h.hostName;
  const files = [...h.knownHostsFiles, ...h.globalKnownHostsFiles];
  // ask first for a key type known_hosts holds for this host, as ssh does; else ssh2's order
  const known = knownKeyTypes({ files, host: keyName, port: h.port })
    .flatMap((t) => t === "ssh-rsa" ? ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"] : [t])
    .filter((a) => HOST_KEY_ALGORITHMS.includes(a));
  let refusal: string | null = null;
  const readyTimeout = (h.connectTimeout ?? 20) * 1000;
  // Loaded only here: ssh2 adds ~20 MB to every run's memory, and only remote backups need it.
  const client: Client = new (await import("ssh2")).Client();
  s.opened.push(client);
  await new Promise<void>((resolve, reject) => {
    client.on("ready", () => resolve());
    client.on("error", (err: Error & { level?: string; code?: string }) => {
      if (refusal) return reject(new BlockdiffError(refusal));
      reject(
        new BlockdiffError(
          `ssh ${target}${via ? ` via ${via}` : ""}: ${connectFailure(err, h, readyTimeout)}`,
        ),
      );
    });
    client.connect({
      ...(sock ? { sock } : { host: h.hostName, port: h.port }),
      username: h.user,
      readyTimeout,
      keepaliveInterval: 15000,
      keepaliveCountMax: 4,
      algorithms: known.length
        ? { serverHostKey: [...new Set([...known, ...HOST_KEY_ALGORITHMS])] }
        : undefined,
      authHandler: auth.length ? auth as never : undefined,
      hostVerifier: (key: Buffer) => {
        const check = checkHostKey({ files, host: keyName, port: h.port, key });
        const fp = `${keyType(key)} key fingerprint ${fingerprint(key)}`;
        if (check.status === "known") return true;
        if (check.status === "revoked") {
          refusal =
            `ssh ${target}: its host key (${fp}) is marked @revoked in ${check.where}; refusing to connect`;
          return false;
        }
        if (check.status === "changed") {
          refusal =
            `ssh ${target}: host key does not match ${check.where} (now ${fp}; changed key: possible ` +
            `man-in-the-middle attack); refusing to connect (if the change is expected, remove that line)`;
          return false;
        }
        if (h.strictHostKeyChecking !== "accept-new" && h.strictHostKeyChecking !== "no") {
          refusal = `ssh ${target}: unknown host key (not in ${
            h.knownHostsFiles.join(", ") || "any known_hosts file"
          }; ${fp}); check it and run again with --accept-new-host-key`;
          return false;
        }
        const file = h.knownHostsFiles[0];
        if (!file) {
          s.log(`warning: ssh ${target}: accepted ${fp} but UserKnownHostsFile is none: not recorded`);
          return true;
        }
        appendHostKey({ file, host: keyName, port: h.port, key, hash: h.hashKnownHosts });
        s.log(`ssh ${target}: recorded its ${fp} in ${file}`);
        return true;
      },
    });
  });
}

/** A connection failure as one line with a hint. */
function connectFailure(
  err: Error & { level?: string; code?: string },
  h: ResolvedHost,
  timeoutMs: number,
): string {
  const at = `${h.hostName}:${h.port}`;
  switch (err.code) {
    case "ENOTFOUND":
    case "EAI_NONAME":
    case "EAI_NODATA":
      return `cannot resolve host '${h.hostName}' (${
        h.hostNameFrom
          ? `the HostName of '${h.alias}' in ${tildePath(h.hostNameFrom)}`
          : `not in DNS/hosts, nor a Host in ${
            tildePath(h.configFile ?? path.join(homeDir(), ".ssh", "config"))
          }`
      })`;
    case "EAI_AGAIN":
      return `cannot resolve host '${h.hostName}' now (the DNS server did not answer; try again)`;
    case "ECONNREFUSED":
      return `connection refused by ${at} (is sshd running on that port?)`;
    case "ETIMEDOUT":
      return `connection to ${at} timed out (host down, or a firewall drops the packets?)`;
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return `no route to ${at} (host down, or a wrong address?)`;
    case "ECONNRESET":
      return `connection reset by ${at} before the SSH handshake ended (sshd refused the connection?)`;
  }
  if (err.level === "client-timeout") {
    return `no SSH handshake with ${at} within ${
      timeoutMs / 1000
    } s (host down, a firewall, or no sshd there?)`;
  }
  if (err.level === "client-authentication") {
    return `authentication as '${h.user}' failed (no key accepted; use -i KEY, IdentityFile or an ssh agent)`;
  }
  return err.message;
}

function tildePath(p: string): string {
  const home = homeDir();
  return p.startsWith(home + "/") ? `~/${p.slice(home.length + 1)}` : p;
}
