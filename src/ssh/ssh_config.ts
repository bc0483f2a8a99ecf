/**
 * ~/.ssh/config as ssh reads it (ssh_config(5)), parsed by the `ssh-config` package and resolved here for
 * one host: the command line's values first, then the config's, the first obtained value of each keyword
 * winning (IdentityFile accumulates); `Host` patterns with `*`, `?` and `!`; `Match` on all, host,
 * originalhost, user and localuser (other criteria: the block is skipped, with a warning); `Include` with
 * `*`/`?` wildcards, relative to ~/.ssh; `%` tokens and `~` in IdentityFile and UserKnownHostsFile.
 * The package's own compute() is not used: its `?` also matches nothing, and it runs `Match exec` commands
 * and nslookup.
 * Which file: `-F FILE` (or `none`), else env BLOCKDIFF_SSH_CONFIG, else ~/.ssh/config (a missing default
 * file is an empty config). The system-wide /etc/ssh/ssh_config is not read.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import SSHConfig, { type Directive, type Line, LineType, type Match, type Section } from "ssh-config";
import { BlockdiffError } from "../errors.ts";
import { homeDir, localUserName } from "../local_user.ts";
import { matchPattern, matchPatternList } from "./patterns.ts";

export interface JumpHop {
  user: string | null;
  host: string;
  port: number | null;
}

export type StrictHostKeyChecking = "yes" | "no" | "accept-new" | "ask";

/** What the command line says about one host; null: not given (the config or the default decides). */
export interface HostRequest {
  /** The host as given: an alias of the config or a name. */
  host: string;
  user: string | null;
  port: number | null;
  /** `-i FILE`: tried first, and an error if unreadable. */
  identity: string | null;
  /** `--known-hosts FILE`, instead of UserKnownHostsFile. */
  knownHosts: string | null;
  /** `--accept-new-host-key`, instead of StrictHostKeyChecking. */
  acceptNewHostKey: boolean;
  /** When this host is a hop of a ProxyJump list: the hops before it (they replace its own ProxyJump). */
  proxyJump: JumpHop[] | null;
}

/** One host's connection settings, resolved. */
export interface ResolvedHost {
  /** The host as given. */
  alias: string;
  /** Where to connect (HostName, or the host as given). */
  hostName: string;
  port: number;
  user: string;
  /** Private key files to try, in order; `requiredIdentity` (from -i) must be readable. */
  identityFiles: string[];
  requiredIdentity: string | null;
  /** IdentitiesOnly yes: the agent's keys are not offered. */
  identitiesOnly: boolean;
  /** UserKnownHostsFile: checked; a new key goes to the first. */
  knownHostsFiles: string[];
  /** GlobalKnownHostsFile: checked only. */
  globalKnownHostsFiles: string[];
  /** The name looked up in known_hosts instead of hostName (HostKeyAlias). */
  hostKeyAlias: string | null;
  strictHostKeyChecking: StrictHostKeyChecking;
  hashKnownHosts: boolean;
  /** Hops to go through, first to last ([] : direct). */
  proxyJump: JumpHop[];
  /** ConnectTimeout in seconds. */
  connectTimeout: number | null;
  /** The config file that gave HostName, for messages; null when the host name is the one given. */
  hostNameFrom: string | null;
  /** The config file read, null for none. */
  configFile: string | null;
}

/** The config file to read: -F FILE, else env BLOCKDIFF_SSH_CONFIG, else ~/.ssh/config; null for `none`. */
export function configPath(cli: string | null): { file: string | null; required: boolean } {
  const given = cli ?? process.env.BLOCKDIFF_SSH_CONFIG ?? null;
  if (given === "none") return { file: null, required: false };
  if (given) return { file: expandTilde(given), required: true };
  return { file: path.join(homeDir(), ".ssh", "config"), required: false };
}

export interface SshConfig {
  file: string | null;
  lines: Line[];
}

/** Reads and parses the config file (`Include`d files are read as resolution reaches them). */
export function loadSshConfig(cli: string | null): SshConfig {
  const { file, required } = configPath(cli);
  if (file === null) return { file: null, lines: [] };
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (!required && code === "ENOENT") return { file: null, lines: [] };
    throw new BlockdiffError(`cannot read ssh config ${file}: ${(err as Error).message}`);
  }
  return { file, lines: parseConfig(text, file) };
}

function parseConfig(text: string, file: string): Line[] {
  try {
    return [...SSHConfig.parse(text)];
  } catch (err) {
    throw new BlockdiffError(`ssh config ${file}: ${(err as Error).message}`);
  }
}

const MAX_INCLUDE_DEPTH = 16;

/** The keywords blockdiff uses (lowercase); others are ignored. */
const USED = new Set([
  "hostname",
  "port",
  "user",
  "identityfile",
  "identitiesonly",
  "proxyjump",
  "proxycommand",
  "userknownhostsfile",
  "globalknownhostsfile",
  "stricthostkeychecking",
  "hashknownhosts",
  "hostkeyalias",
  "connecttimeout",
]);

const MATCH_CRITERIA = new Set(["all", "host", "originalhost", "user", "localuser"]);

/** Resolves `req.host` against `config`; `warn` gets a line for each `Match` criterion not supported. */
export function resolveHost(config: SshConfig, req: HostRequest, warn: (line: string) => void): ResolvedHost {
  const localUser = localUserName();
  const home = homeDir();
  /** keyword -> the first obtained value, where it came from, and under which keyword */
  const opts = new Map<string, Setting>();
  const identities: string[] = [];
  const warned = new Set<string>();
  const set = (key: string, values: string[], file: string) => {
    if (key === "identityfile") return void identities.push(...values);
    // ProxyJump and ProxyCommand compete: the first given of either wins
    const slot = key === "proxycommand" ? "proxyjump" : key;
    if (!opts.has(slot)) opts.set(slot, { values, file, key });
  };
  const hostNameSoFar = () =>
    opts.has("hostname")
      ? expandTokens(opts.get("hostname")!.values[0], { "%": "%", h: req.host })
      : req.host;
  const remoteUserSoFar = () => req.user ?? opts.get("user")?.values[0] ?? localUser;

  const matchBlock = (criteria: Match["criteria"], file: string): boolean => {
    for (const [rawKey, rawValue] of Object.entries(criteria)) {
      const negate = rawKey.startsWith("!");
      const key = (negate ? rawKey.slice(1) : rawKey).toLowerCase();
      const value = Array.isArray(rawValue) ? rawValue.map((v) => v.val).join(",") : rawValue;
      if (!MATCH_CRITERIA.has(key)) {
        if (!warned.has(key)) {
          warned.add(key);
          warn(`warning: ${file}: 'Match ${key}' is not supported by blockdiff: that block is ignored`);
        }
        return false;
      }
      const hit = key === "all"
        ? true
        : key === "host"
        ? matchPatternList(hostNameSoFar(), value, { ignoreCase: true }) === "match"
        : key === "originalhost"
        ? matchPatternList(req.host, value, { ignoreCase: true }) === "match"
        : key === "user"
        ? matchPatternList(remoteUserSoFar(), value, { ignoreCase: false }) === "match"
        : matchPatternList(localUser, value, { ignoreCase: false }) === "match";
      if (hit === negate) return false;
    }
    return true;
  };

  const apply = (lines: Line[], active: boolean, file: string, depth: number) => {
    for (const line of lines) {
      if (line.type !== LineType.DIRECTIVE) continue;
      const key = line.param.toLowerCase();
      if (key === "host") {
        const on = matchPatternList(req.host, valuesOf(line), { ignoreCase: true }) === "match";
        apply((line as Section).config ?? [], on, file, depth);
      } else if (key === "match") {
        const m = line as Match;
        apply(m.config ?? [], matchBlock(m.criteria ?? {}, file), file, depth);
      } else if (key === "include") {
        if (!active) continue; // as ssh: nothing of a file included under a block that does not apply
        if (depth >= MAX_INCLUDE_DEPTH) {
          throw new BlockdiffError(`ssh config ${file}: Include nested more than ${MAX_INCLUDE_DEPTH} deep`);
        }
        for (const included of includeFiles(valuesOf(line).join(" "), home)) {
          let text: string;
          try {
            text = fs.readFileSync(included, "utf8");
          } catch {
            continue; // a directory or a file gone: ssh skips it too
          }
          apply(parseConfig(text, included), active, included, depth + 1);
        }
      } else if (active && USED.has(key)) set(key, valuesOf(line), file);
    }
  };

  apply(config.lines, true, config.file ?? "", 0);

  const value = (key: string) => opts.get(key)?.values[0];
  const where = (key: string) => opts.get(key)?.file ?? "";
  const hostName = hostNameSoFar();
  const portText = value("port");
  const port = req.port ?? (portText === undefined ? 22 : Number(portText));
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new BlockdiffError(`ssh config ${where("port")}: Port must be 1-65535, not '${portText}'`);
  }
  const user = remoteUserSoFar();
  const hostKeyAlias = value("hostkeyalias") ?? null;
  const tokens = {
    "%": "%",
    d: home,
    h: hostName,
    p: String(port),
    r: user,
    u: localUser,
    n: req.host,
    k: hostKeyAlias ?? req.host,
    i: String(process.getuid?.() ?? ""),
    l: os.hostname(),
    L: os.hostname().split(".")[0],
    C: createHash("sha1").update(`${os.hostname()}${hostName}${port}${user}`).digest("hex"),
  };
  const expandPath = (p: string) => expandTilde(expandTokens(p, tokens));
  const files = (key: string, fallback: string[]) => {
    const v = opts.get(key)?.values;
    if (!v) return fallback;
    return v.length === 1 && v[0].toLowerCase() === "none" ? [] : v.map(expandPath);
  };
  const identityFiles = [
    ...new Set([
      ...(req.identity ? [req.identity] : []),
      ...identities.map(expandPath),
    ]),
  ];
  return {
    alias: req.host,
    hostName,
    port,
    user,
    identityFiles: identityFiles.length
      ? identityFiles
      : ["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => path.join(home, ".ssh", k)),
    requiredIdentity: req.identity,
    identitiesOnly: yesNo(opts.get("identitiesonly"), "IdentitiesOnly") ?? false,
    knownHostsFiles: req.knownHosts ? [req.knownHosts] : files("userknownhostsfile", [
      path.join(home, ".ssh", "known_hosts"),
      path.join(home, ".ssh", "known_hosts2"),
    ]),
    globalKnownHostsFiles: files("globalknownhostsfile", [
      "/etc/ssh/ssh_known_hosts",
      "/etc/ssh/ssh_known_hosts2",
    ]),
    hostKeyAlias,
    strictHostKeyChecking: req.acceptNewHostKey
      ? "accept-new"
      : strictness(opts.get("stricthostkeychecking")),
    hashKnownHosts: yesNo(opts.get("hashknownhosts"), "HashKnownHosts") ?? false,
    proxyJump: req.proxyJump ?? proxyJump(opts.get("proxyjump")),
    connectTimeout: timeout(opts.get("connecttimeout")),
    hostNameFrom: opts.has("hostname") ? where("hostname") : null,
    configFile: config.file,
  };
}

interface Setting {
  values: string[];
  /** The config file it came from. */
  file: string;
  /** The keyword as written (lowercase). */
  key: string;
}

/** A directive's arguments: the package gives one string, or a list for the multi-valued keywords. */
function valuesOf(line: Directive): string[] {
  return Array.isArray(line.value) ? line.value.map((v) => v.val) : [line.value];
}

function yesNo(o: Setting | undefined, name: string): boolean | undefined {
  if (!o) return undefined;
  const v = o.values[0].toLowerCase();
  if (v === "yes" || v === "true") return true;
  if (v === "no" || v === "false") return false;
  throw new BlockdiffError(`ssh config ${o.file}: ${name} must be yes or no, not '${o.values[0]}'`);
}

function strictness(o: Setting | undefined): StrictHostKeyChecking {
  if (!o) return "ask";
  const v = o.values[0].toLowerCase();
  if (v === "yes" || v === "true") return "yes";
  if (v === "no" || v === "false" || v === "off") return "no";
  if (v === "accept-new" || v === "ask") return v;
  throw new BlockdiffError(
    `ssh config ${o.file}: StrictHostKeyChecking must be yes, no, accept-new or ask, not '${o.values[0]}'`,
  );
}

function timeout(o: Setting | undefined): number | null {
  if (!o || o.values[0].toLowerCase() === "none") return null;
  if (!/^\d+$/.test(o.values[0]) || Number(o.values[0]) < 1) {
    throw new BlockdiffError(
      `ssh config ${o.file}: ConnectTimeout must be a number of seconds, not '${o.values[0]}'`,
    );
  }
  return Number(o.values[0]);
}

function proxyJump(o: Setting | undefined): JumpHop[] {
  if (!o || o.values[0].toLowerCase() === "none") return [];
  if (o.key === "proxycommand") {
    throw new BlockdiffError(
      `ssh config ${o.file}: ProxyCommand is not supported by blockdiff (it connects in-process); ` +
        `use ProxyJump [user@]host[:port]`,
    );
  }
  return parseJumpList(o.values.join(","), o.file);
}

/** A ProxyJump list: `[user@]host[:port]` or `ssh://[user@]host[:port]`, comma-separated. */
export function parseJumpList(text: string, from: string): JumpHop[] {
  return text.split(",").map((hop) => {
    const m = /^(?:ssh:\/\/)?(?:([^@\s]+)@)?(\[[^\]]+\]|[^:@\/\s\[\]]+)(?::(\d+))?\/?$/.exec(hop.trim());
    const port = m?.[3] === undefined ? null : Number(m[3]);
    if (!m || (port !== null && (port < 1 || port > 65535))) {
      throw new BlockdiffError(`${from}: ProxyJump hop '${hop}' is not [user@]host[:port]`);
    }
    return { user: m[1] ?? null, host: m[2].replace(/^\[(.*)\]$/, "$1"), port };
  });
}

/** `%x` tokens; an unknown one is an error, as in ssh. */
export function expandTokens(text: string, tokens: Record<string, string>): string {
  return text.replace(/%(.?)/g, (all, t: string) => {
    if (t in tokens) return tokens[t];
    throw new BlockdiffError(`ssh config: unknown or unsupported token '${all}' in '${text}'`);
  });
}

/** `~` and `~/...` at the start: the home directory (`~user` is left as it is). */
export function expandTilde(p: string): string {
  if (p === "~") return homeDir();
  return p.startsWith("~/") ? path.join(homeDir(), p.slice(2)) : p;
}

/** The files an Include names, in lexical order per pattern: `~` expanded, relative to ~/.ssh. */
export function includeFiles(spec: string, home: string): string[] {
  return spec.split(/\s+/).filter(Boolean).flatMap((p) => {
    const full = path.resolve(path.join(home, ".ssh"), expandTilde(p));
    return expandGlob(full);
  });
}

/** A path whose components may hold `*` and `?` (as glob(3), without brackets), existing matches sorted. */
function expandGlob(full: string): string[] {
  const parts = full.split("/").filter(Boolean);
  let found = ["/"];
  for (const part of parts) {
    const next: string[] = [];
    for (const dir of found) {
      if (!/[*?]/.test(part)) {
        next.push(path.join(dir, part));
        continue;
      }
      let names: string[];
      try {
        names = fs.readdirSync(dir).sort();
      } catch {
        continue;
      }
      for (const n of names) {
        if (n.startsWith(".") && !part.startsWith(".")) continue;
        if (matchPattern(n, part)) next.push(path.join(dir, n));
      }
    }
    found = next;
  }
  return found.filter((f) => fs.existsSync(f));
}
