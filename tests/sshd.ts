/** A real OpenSSH sshd on 127.0.0.1 with its own config, host key and authorized key. */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import process from "node:process";
import { freePort, tempDir, waitUntil } from "./helpers.ts";

export interface Sshd {
  port: number;
  dir: string;
  clientKey: string;
  /** A known_hosts file that holds this server's key. */
  knownHosts: string;
  /** The server's public key line ("ssh-ed25519 AAAA..."). */
  hostKeyLine: string;
  /** The public key line of another host key type (SshdOptions.moreHostKeys). */
  moreHostKeyLine(type: string): string;
  /** How many commands (SSH sessions) the server has started so far. */
  commandsStarted(): number;
  /** What the server has logged so far. */
  log(): string;
  stop(): void;
}

export function sshdAvailable(): boolean {
  return fs.existsSync("/usr/sbin/sshd") && typeof process.getuid === "function" && process.getuid() === 0;
}

export interface SshdOptions {
  /** sshd's LogLevel (default VERBOSE); DEBUG1 also logs each forwarding request (`direct-tcpip`). */
  logLevel?: string;
  /** AllowTcpForwarding (default yes, as sshd's): a jump host forwards the client's channels. */
  allowTcpForwarding?: boolean;
  /** Host key types besides ed25519 (host_key): e.g. "ecdsa", in host_key_ecdsa. */
  moreHostKeys?: string[];
}

/** Starts a server of its own (several can run at once, each on its own port and directory). */
export async function startSshd(o: SshdOptions = {}): Promise<Sshd> {
  const dir = tempDir("blockdiff-sshd-");
  const keygen = (f: string, type = "ed25519") =>
    execFileSync("ssh-keygen", ["-q", "-t", type, "-N", "", "-f", path.join(dir, f)]);
  keygen("host_key");
  for (const type of o.moreHostKeys ?? []) keygen(`host_key_${type}`, type);
  keygen("client_key");
  fs.copyFileSync(path.join(dir, "client_key.pub"), path.join(dir, "authorized_keys"));
  fs.mkdirSync("/run/sshd", { recursive: true });
  const port = await freePort();
  fs.writeFileSync(
    path.join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host_key`,
      ...(o.moreHostKeys ?? []).map((type) => `HostKey ${dir}/host_key_${type}`),
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "MaxStartups 50",
      `LogLevel ${o.logLevel ?? "VERBOSE"}`, // VERBOSE logs "Starting session: command ..." for each command
      `AllowTcpForwarding ${o.allowTcpForwarding === false ? "no" : "yes"}`,
      "",
    ].join("\n"),
  );
  const child = spawn("/usr/sbin/sshd", ["-D", "-e", "-f", path.join(dir, "sshd_config")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  child.stderr!.on("data", (d) => log += d);
  await waitUntil(() => canConnect(port), `sshd on port ${port}`, 10000, 50).catch((err) => {
    throw new Error(`${err.message}: ${log}`);
  });
  const hostKeyLine = fs.readFileSync(path.join(dir, "host_key.pub"), "utf8").trim().split(" ").slice(0, 2)
    .join(" ");
  const knownHosts = path.join(dir, "known_hosts");
  fs.writeFileSync(knownHosts, `[127.0.0.1]:${port} ${hostKeyLine}\n`);
  return {
    port,
    dir,
    clientKey: path.join(dir, "client_key"),
    knownHosts,
    hostKeyLine,
    commandsStarted: () => log.match(/Starting session: command/g)?.length ?? 0,
    log: () => log,
    moreHostKeyLine: (type) =>
      fs.readFileSync(path.join(dir, `host_key_${type}.pub`), "utf8").trim().split(" ").slice(0, 2).join(" "),
    stop() {
      child.kill("SIGTERM");
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, "127.0.0.1", () => {
      c.destroy();
      resolve(true);
    });
    c.on("error", () => resolve(false));
  });
}
