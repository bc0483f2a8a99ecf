/**
 * SSH_ARGS of the original ssh_blockdiff_dump and ssh_lvm_dump: one string the original put unquoted after
 * `ssh`, so the shell split it into words (`"-p 2222 root@db1"`). Read here into blockdiff's SSH options
 * and remote SOURCE: the OpenSSH options such lines are used with (-p, -i, -l, -F, -o Port/User/IdentityFile/
 * StrictHostKeyChecking/UserKnownHostsFile/BatchMode) and exactly one destination `[user@]host` (or
 * `ssh://[user@]host[:port]`). Any other option is refused by name: blockdiff speaks SSH in-process, so an
 * ssh option it does not know would be silently dropped. As in ssh, the first value given for the user,
 * the port, the known hosts file or the host key checking wins.
 */
import { UsageError } from "../errors.ts";
import { expandTilde } from "../ssh/ssh_config.ts";

export interface OriginalSsh {
  host: string;
  user: string | null;
  port: number | null;
  identity: string | null;
  knownHosts: string | null;
  acceptNewHostKey: boolean;
  config: string | null;
}

const SUPPORTED =
  "-p, -i, -l, -F, -o Port/User/IdentityFile/StrictHostKeyChecking/UserKnownHostsFile/BatchMode";

/** The `-o` keys understood (lower case, as ssh compares them). */
const O_KEYS = ["port", "user", "identityfile", "stricthostkeychecking", "userknownhostsfile", "batchmode"];

/** Reads SSH_ARGS; `who` names the tool in messages ("ssh_lvm_dump"). */
export function parseSshArgs(text: string, who: string): OriginalSsh {
  const fail = (why: string): never => {
    throw new UsageError(`${who}: SSH_ARGS '${text}': ${why}`);
  };
  const words = text.split(/[ \t\n]+/).filter((w) => w !== "");
  let destination: string | null = null;
  let user: string | null = null, port: number | null = null;
  let identity: string | null = null, knownHosts: string | null = null, config: string | null = null;
  let strict: string | null = null;
  const setPort = (v: string, what: string) => {
    if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > 65535) {
      fail(`${what} '${v}' is not a port (1-65535)`);
    }
    port ??= Number(v);
  };
  const setIdentity = (v: string) => {
    const p = expandTilde(v);
    if (identity !== null && identity !== p) fail("more than one identity file (-i); blockdiff takes one");
    identity = p;
  };
  for (let i = 0; i < words.length; i++) {
    const w = words[i];
    if (!w.startsWith("-") || w === "-") {
      if (destination !== null) {
        fail(`more than one destination ('${destination}', '${w}'): give [options] [user@]host`);
      }
      destination = w;
      const d = parseDestination(w, fail);
      user ??= d.user;
      if (d.port !== null) port ??= d.port;
      continue;
    }
    const flag = w.slice(0, 2);
    if (!["-p", "-i", "-l", "-F", "-o"].includes(flag)) {
      fail(`option ${w} is not supported (only ${SUPPORTED})`);
    }
    let value = w.length > 2 ? w.slice(2) : words[++i];
    if (value === undefined) fail(`option ${flag} needs a value`);
    value = value!;
    if (flag === "-p") setPort(value, "-p");
    else if (flag === "-i") setIdentity(value);
    else if (flag === "-l") user ??= checkUser(value, fail);
    else if (flag === "-F") config ??= expandTilde(value);
    else {
      // -o Key=Value, -oKey=Value, and -o Key Value as the shell split it
      let key: string, v: string | undefined;
      const eq = value.indexOf("=");
      if (eq >= 0) [key, v] = [value.slice(0, eq), value.slice(eq + 1)];
      else [key, v] = [value, words[++i]];
      const k = key.trim().toLowerCase();
      if (!O_KEYS.includes(k)) fail(`option -o ${key} is not supported (only ${SUPPORTED})`);
      if (v === undefined || v.trim() === "") fail(`option -o ${key} needs a value`);
      v = v!.trim();
      if (k === "port") setPort(v, "-o Port");
      else if (k === "user") user ??= checkUser(v, fail);
      else if (k === "identityfile") setIdentity(v);
      else if (k === "userknownhostsfile") {
        if (/\s/.test(v)) fail("UserKnownHostsFile must name one file");
        knownHosts ??= expandTilde(v);
      } else if (k === "stricthostkeychecking") {
        if (!["yes", "ask", "no", "off", "accept-new"].includes(v.toLowerCase())) {
          fail(`StrictHostKeyChecking must be yes, ask, accept-new or no, not '${v}'`);
        }
        strict ??= v.toLowerCase();
      } else if (!["yes", "no"].includes(v.toLowerCase())) fail(`BatchMode must be yes or no, not '${v}'`);
      // BatchMode: blockdiff never asks for a password or a passphrase, whatever it says
    }
  }
  if (destination === null) fail("no destination [user@]host");
  return {
    host: parseDestination(destination!, fail).host,
    user,
    port,
    identity,
    knownHosts,
    // no/off: new host keys are accepted and recorded; a changed key is still refused (blockdiff always does)
    acceptNewHostKey: strict === "accept-new" || strict === "no" || strict === "off",
    config,
  };
}

function parseDestination(w: string, fail: (why: string) => never) {
  const m = /^ssh:\/\/(?:([^@/:]+)@)?([^@/:]+)(?::(\d+))?\/?$/.exec(w) ??
    /^(?:([^@/:]+)@)?([^@/:]+)$/.exec(w);
  if (!m || /["'\\$`]/.test(w) || m[2].startsWith(".")) {
    fail(`'${w}' is not a destination [user@]host (a host name or IPv4 address)`);
  }
  const port = m![3] === undefined ? null : Number(m![3]);
  if (port !== null && !(port >= 1 && port <= 65535)) fail(`'${w}' has no valid port`);
  return { user: m![1] ?? null, host: m![2], port };
}

function checkUser(v: string, fail: (why: string) => never): string {
  if (!/^[^@/:\s"'\\$`]+$/.test(v)) fail(`'${v}' is not a user name`);
  return v;
}

/** blockdiff's SSH options (ssh_options.ts) saying what SSH_ARGS said. */
export function sshOptionArgs(s: OriginalSsh): string[] {
  return [
    ...(s.identity !== null ? ["--identity", s.identity] : []),
    ...(s.knownHosts !== null ? ["--known-hosts", s.knownHosts] : []),
    ...(s.acceptNewHostKey ? ["--accept-new-host-key"] : []),
    ...(s.config !== null ? ["--ssh-config", s.config] : []),
  ];
}

/** The remote SOURCE `[user@]host[:port]:/path`; the path must be absolute (the remote shell's cwd is unknown). */
export function remoteSource(s: OriginalSsh, remotePath: string, who: string, what: string): string {
  if (!remotePath.startsWith("/")) {
    throw new UsageError(`${who}: ${what} must be an absolute path on the remote host, not '${remotePath}'`);
  }
  return `${s.user !== null ? s.user + "@" : ""}${s.host}${
    s.port !== null ? ":" + s.port : ""
  }:${remotePath}`;
}
