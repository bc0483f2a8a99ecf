/** SOURCE on the command line: a local path, `[user@]host[:port]:/path` or `ssh://[user@]host[:port]/path`. */
import { UsageError } from "../errors.ts";

export type SourceSpec =
  | { kind: "local"; path: string }
  /** `user` and `port` null when not given (the ssh config's, else the uid's name and 22). */
  | { kind: "remote"; user: string | null; host: string; port: number | null; path: string };

export function parseSource(s: string): SourceSpec {
  if (s.startsWith("ssh://")) {
    const m = /^ssh:\/\/(?:([^@/]+)@)?([^:/]+)(?::(\d+))?(\/.*)$/.exec(s);
    if (!m) throw new UsageError(`cannot parse ${s} (expected ssh://[user@]host[:port]/path)`);
    return remote(m[1], m[2], m[3], m[4], s);
  }
  // host:/path, user@host:/path, host:port:/path — a colon before the first slash
  const m = /^(?:([^@/:]+)@)?([^@/:]+)(?::(\d+))?:(.+)$/.exec(s);
  if (!m || s.startsWith("/") || s.startsWith(".")) return { kind: "local", path: s };
  return remote(m[1], m[2], m[3], m[4], s);
}

function remote(
  user: string | undefined,
  host: string,
  port: string | undefined,
  path: string,
  s: string,
): SourceSpec {
  const p = port === undefined ? null : Number(port);
  if (p !== null && !(p >= 1 && p <= 65535)) throw new UsageError(`invalid port in ${s}`);
  if (!path.startsWith("/")) throw new UsageError(`remote path in ${s} must be absolute`);
  return { kind: "remote", user: user ?? null, host, port: p, path };
}

export function describeSource(s: SourceSpec): string {
  if (s.kind === "local") return s.path;
  return `${s.user ? s.user + "@" : ""}${s.host}${s.port === null ? "" : ":" + s.port}:${s.path}`;
}
