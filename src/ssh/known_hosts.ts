/**
 * OpenSSH known_hosts checking (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT"): host pattern lists with `*`, `?` and
 * `!` (patterns.ts), `[host]:port` for ports other than 22, hashed names (`|1|salt|hash`), `@revoked` keys;
 * `@cert-authority` lines are skipped (blockdiff does not use host certificates).
 */
import { createHash, createHmac, randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { matchPatternList } from "./patterns.ts";

export type HostKeyStatus = "known" | "changed" | "revoked" | "unknown";

export interface HostKeyCheck {
  status: HostKeyStatus;
  /** FILE:LINE of the entry that decided (the revoked key, or the host's other key), null for unknown. */
  where: string | null;
}

/** The name known_hosts records for a host: the bare name on port 22, `[host]:port` on others. */
export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** The type named inside an SSH public key blob ("ssh-ed25519", "ssh-rsa", ...). */
export function keyType(key: Buffer): string {
  return key.subarray(4, 4 + key.readUInt32BE(0)).toString();
}

/** The fingerprint as OpenSSH shows it: `SHA256:` and the unpadded base64 of the blob's SHA-256. */
export function fingerprint(key: Buffer): string {
  return `SHA256:${createHash("sha256").update(key).digest("base64").replace(/=+$/, "")}`;
}

function matchesName(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (!salt || !hash) return false;
    return createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64") === hash;
  }
  return matchPatternList(name, field, { ignoreCase: true }) === "match";
}

interface Entry {
  marker: "revoked" | null;
  blob: string;
  type: string | null;
  where: string;
}

/** The entries of `files` whose host patterns match host:port (unreadable files count as empty). */
function entriesFor(files: string[], host: string, port: number): Entry[] {
  const name = hostPattern(host, port);
  const out: Entry[] = [];
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const [i, raw] of text.split("\n").entries()) {
      const line = raw.trim();
      if (line === "" || line.startsWith("#")) continue;
      let fields = line.split(/\s+/);
      let marker: Entry["marker"] = null;
      if (fields[0].startsWith("@")) {
        if (fields[0] !== "@revoked") continue; // @cert-authority, or an unknown marker
        marker = "revoked";
        fields = fields.slice(1);
      }
      if (fields.length < 3 || !matchesName(fields[0], name)) continue;
      let type: string | null = null;
      try {
        type = keyType(Buffer.from(fields[2], "base64"));
      } catch { /* not a key blob (an old RSA1 line): its key never equals the server's */ }
      out.push({ marker, blob: fields[2], type, where: `${file}:${i + 1}` });
    }
  }
  return out;
}

/**
 * The server's key blob against the entries for host:port in `files`: revoked if a `@revoked` entry holds
 * it, known if an entry does, changed if the host has another key of the same type, else unknown.
 */
export function checkHostKey(o: { files: string[]; host: string; port: number; key: Buffer }): HostKeyCheck {
  const entries = entriesFor(o.files, o.host, o.port);
  const blob = o.key.toString("base64");
  const revoked = entries.find((e) => e.marker === "revoked" && e.blob === blob);
  if (revoked) return { status: "revoked", where: revoked.where };
  const known = entries.find((e) => e.marker === null && e.blob === blob);
  if (known) return { status: "known", where: known.where };
  const type = keyType(o.key);
  const other = entries.find((e) => e.marker === null && e.type === type);
  return other ? { status: "changed", where: other.where } : { status: "unknown", where: null };
}

/** The key types recorded for host:port, so the handshake can ask for one of those first, as ssh does. */
export function knownKeyTypes(o: { files: string[]; host: string; port: number }): string[] {
  const types = entriesFor(o.files, o.host, o.port).filter((e) => e.marker === null && e.type !== null)
    .map((e) => e.type!);
  return [...new Set(types)];
}

/** Appends host:port's key to `file` (0600, its directory created 0700); hashed like `HashKnownHosts yes`. */
export function appendHostKey(
  o: { file: string; host: string; port: number; key: Buffer; hash: boolean },
): void {
  const name = hostPattern(o.host, o.port);
  let field = name;
  if (o.hash) {
    const salt = randomBytes(20);
    field = `|1|${salt.toString("base64")}|${createHmac("sha1", salt).update(name).digest("base64")}`;
  }
  fs.mkdirSync(path.dirname(o.file), { recursive: true, mode: 0o700 });
  fs.appendFileSync(o.file, `${field} ${keyType(o.key)} ${o.key.toString("base64")}\n`, { mode: 0o600 });
}
