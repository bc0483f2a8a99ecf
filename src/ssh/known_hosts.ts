/**
 * OpenSSH known_hosts checking: plain and hashed (`|1|salt|hash`) host patterns, `[host]:port` for
 * non-standard ports, markers ignored except @revoked (treated as a mismatch).
 */
import { createHmac } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";

export type HostKeyStatus = "known" | "changed" | "unknown";

export function hostPattern(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

function matchesHost(field: string, name: string): boolean {
  for (const pat of field.split(",")) {
    if (pat.startsWith("|1|")) {
      const [, , salt, hash] = pat.split("|");
      const h = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
      if (h === hash) return true;
    } else if (pat === name) return true;
  }
  return false;
}

/** Compares the server's key blob with the entries for host:port in `file`. */
export function checkHostKey(file: string, host: string, port: number, key: Buffer): HostKeyStatus {
  let text = "";
  try {
    text = fs.readFileSync(file, "utf8");
  } catch {
    return "unknown";
  }
  const name = hostPattern(host, port);
  const blob = key.toString("base64");
  const keyType = key.subarray(4, 4 + key.readUInt32BE(0)).toString();
  let sawHost = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    let fields = line.split(/\s+/);
    let revoked = false;
    if (fields[0].startsWith("@")) {
      revoked = fields[0] === "@revoked";
      if (!revoked) continue; // @cert-authority: not supported, ignore
      fields = fields.slice(1);
    }
    if (fields.length < 3 || !matchesHost(fields[0], name)) continue;
    if (fields[2] === blob) return revoked ? "changed" : "known";
    if (fields[1] === keyType && !revoked) sawHost = true; // a revoked key is not the host's key
  }
  return sawHost ? "changed" : "unknown";
}

export function appendHostKey(file: string, host: string, port: number, key: Buffer): void {
  const keyType = key.subarray(4, 4 + key.readUInt32BE(0)).toString();
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
  fs.appendFileSync(file, `${hostPattern(host, port)} ${keyType} ${key.toString("base64")}\n`, {
    mode: 0o600,
  });
}
