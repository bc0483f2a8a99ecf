/** known_hosts checking: plain, hashed and [host]:port entries, @revoked, a changed key. */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { appendHostKey, checkHostKey } from "../../src/ssh/known_hosts.ts";
import { it, tempDir } from "../helpers.ts";

/** An SSH public key blob: string type, then key bytes. */
function keyBlob(type: string, fill: number): Buffer {
  const t = Buffer.from(type),
    k = Buffer.alloc(32, fill),
    len = (n: number) => {
      const b = Buffer.alloc(4);
      b.writeUInt32BE(n);
      return b;
    };
  return Buffer.concat([len(t.length), t, len(k.length), k]);
}

describe("known_hosts", () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = keyBlob("ssh-ed25519", 1), other = keyBlob("ssh-ed25519", 2), rsa = keyBlob("ssh-rsa", 3);
  const line = (host: string, k: Buffer, type = "ssh-ed25519") => `${host} ${type} ${k.toString("base64")}\n`;
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };

  it("knows a plain entry, also in a list of names; port 22 is the bare name, others [host]:port", () => {
    const p = file("plain", `# comment\n\n${line("db2,db1", key)}${line("[db1]:2222", other)}`);
    assert.equal(checkHostKey(p, "db1", 22, key), "known");
    assert.equal(checkHostKey(p, "db1", 2222, other), "known");
    assert.equal(checkHostKey(p, "db3", 22, key), "unknown");
    assert.equal(checkHostKey(path.join(dir, "missing"), "db1", 22, key), "unknown");
  });

  it("knows a hashed entry (|1|salt|hash)", () => {
    const salt = Buffer.alloc(20, 7);
    const hash = createHmac("sha1", salt).update("[db1]:2222").digest("base64");
    const p = file("hashed", line(`|1|${salt.toString("base64")}|${hash}`, key));
    assert.equal(checkHostKey(p, "db1", 2222, key), "known");
    assert.equal(checkHostKey(p, "db1", 22, key), "unknown");
  });

  it("a different key of the same type is a change; of another type, unknown; @revoked is a change", () => {
    const p = file("changed", line("db1", key));
    assert.equal(checkHostKey(p, "db1", 22, other), "changed");
    assert.equal(checkHostKey(p, "db1", 22, rsa), "unknown");
    const r = file("revoked", `@revoked ${line("db1", key)}@cert-authority ${line("db1", other)}`);
    assert.equal(checkHostKey(r, "db1", 22, key), "changed");
    assert.equal(checkHostKey(r, "db1", 22, other), "unknown");
  });

  it("appendHostKey records a key that is then known (file 0600, directory created 0700)", () => {
    const p = path.join(dir, "new", "known_hosts");
    appendHostKey(p, "db1", 2222, rsa);
    assert.equal(checkHostKey(p, "db1", 2222, rsa), "known");
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(p)).mode & 0o777, 0o700);
  });
});
