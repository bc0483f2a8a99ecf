/** known_hosts checking: patterns (`*`, `?`, `!`, lists), hashed and [host]:port entries, markers, changes. */
import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import {
  appendHostKey,
  checkHostKey,
  fingerprint,
  hostPattern,
  keyType,
  knownKeyTypes,
} from "../../src/ssh/known_hosts.ts";
import { matchHostPatterns, matchPattern, matchPatternList } from "../../src/ssh/patterns.ts";
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

describe("OpenSSH patterns", () => {
  it("* matches any run (also none), ? exactly one character, the rest itself", () => {
    assert.ok(matchPattern("db1.example.com", "*.example.com"));
    assert.ok(matchPattern(".example.com", "*.example.com"));
    assert.ok(!matchPattern("example.com", "*.example.com"));
    assert.ok(matchPattern("10.0.0.7", "10.0.0.?"));
    assert.ok(!matchPattern("10.0.0.", "10.0.0.?"), "? matched no character");
    assert.ok(!matchPattern("10.0.0.17", "10.0.0.?"));
    assert.ok(matchPattern("[10.0.0.5]:2222", "[10.0.0.?]:2222"), "[ ] are plain characters");
    assert.ok(matchPattern("abcabd", "*ab?"), "backtracks to the last *");
    assert.ok(matchPattern("", "*"));
    assert.ok(!matchPattern("a", ""));
    assert.ok(!matchPattern("db1xexample.com", "db1.example.com"), ". is not a regex wildcard");
  });

  it("a list: any positive match, unless a negated pattern matches; case-insensitive for hosts", () => {
    assert.equal(matchPatternList("db2", "db1,db2", { ignoreCase: true }), "match");
    assert.equal(matchPatternList("db2", "db*,!db2", { ignoreCase: true }), "negated");
    assert.equal(matchPatternList("db2", "!db2,db*", { ignoreCase: true }), "negated");
    assert.equal(matchPatternList("db3", "db*,!db2", { ignoreCase: true }), "match");
    assert.equal(
      matchPatternList("db3", "!db2", { ignoreCase: true }),
      "none",
      "a negation alone selects none",
    );
    assert.equal(matchPatternList("DB1", "db1", { ignoreCase: true }), "match");
    assert.equal(matchPatternList("Bob", "bob", { ignoreCase: false }), "none");
    assert.ok(matchHostPatterns("web.Example.com", ["*.example.com", "!db.*"]));
    assert.ok(!matchHostPatterns("db.example.com", ["*.example.com", "!db.*"]));
  });
});

describe("known_hosts", () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = keyBlob("ssh-ed25519", 1), other = keyBlob("ssh-ed25519", 2), rsa = keyBlob("ssh-rsa", 3);
  const line = (host: string, k: Buffer) => `${host} ${keyType(k)} ${k.toString("base64")}\n`;
  const file = (name: string, text: string) => {
    const p = path.join(dir, name);
    fs.writeFileSync(p, text);
    return p;
  };
  const check = (files: string | string[], host: string, port: number, k: Buffer) =>
    checkHostKey({ files: Array.isArray(files) ? files : [files], host, port, key: k }).status;

  it("knows a plain entry, also in a list of names; port 22 is the bare name, others [host]:port", () => {
    const p = file("plain", `# comment\n\n${line("db2,db1", key)}${line("[db1]:2222", other)}`);
    assert.equal(check(p, "db1", 22, key), "known");
    assert.equal(check(p, "db1", 2222, other), "known");
    assert.equal(check(p, "db3", 22, key), "unknown");
    assert.equal(check(p, "db1", 2223, other), "unknown");
    assert.equal(check(path.join(dir, "missing"), "db1", 22, key), "unknown");
    assert.equal(hostPattern("db1", 22), "db1");
    assert.equal(hostPattern("db1", 2222), "[db1]:2222");
  });

  it("wildcards, ? and negation in host patterns, also inside [host]:port", () => {
    const p = file(
      "patterns",
      line("*.example.com,!bad.example.com", key) + line("[10.0.0.?]:2222", key) + line("[db*]:*", other),
    );
    assert.equal(check(p, "web.example.com", 22, key), "known");
    assert.equal(check(p, "bad.example.com", 22, key), "unknown", "a negated name is not this line's");
    assert.equal(check(p, "10.0.0.5", 2222, key), "known");
    assert.equal(check(p, "10.0.0.15", 2222, key), "unknown");
    assert.equal(check(p, "10.0.0.5", 22, key), "unknown", "port 22 is the bare name");
    assert.equal(check(p, "db7", 2200, other), "known");
    assert.equal(check(p, "db7", 2200, key), "changed");
  });

  it("knows a hashed entry (|1|salt|hash)", () => {
    const salt = Buffer.alloc(20, 7);
    const hash = createHmac("sha1", salt).update("[db1]:2222").digest("base64");
    const p = file("hashed", line(`|1|${salt.toString("base64")}|${hash}`, key));
    assert.equal(check(p, "db1", 2222, key), "known");
    assert.equal(check(p, "db1", 22, key), "unknown");
  });

  it("a different key of the same type is a change; of another type, unknown; several files are one list", () => {
    const p = file("changed", `${line("db9", rsa)}${line("db1", key)}`);
    assert.deepEqual(checkHostKey({ files: [p], host: "db1", port: 22, key: other }), {
      status: "changed",
      where: `${p}:2`,
    });
    assert.equal(check(p, "db1", 22, rsa), "unknown");
    const second = file("second", line("db1", other));
    assert.equal(check([p, second], "db1", 22, other), "known");
    assert.deepEqual(knownKeyTypes({ files: [p, second], host: "db1", port: 22 }), ["ssh-ed25519"]);
    assert.deepEqual(knownKeyTypes({ files: [p], host: "db9", port: 22 }), ["ssh-rsa"]);
  });

  it("@revoked refuses that key even where it is also listed; @cert-authority lines are not host keys", () => {
    const r = file(
      "revoked",
      `${line("db1", key)}@revoked ${line("*", key)}@cert-authority ${line("db1", other)}`,
    );
    assert.deepEqual(checkHostKey({ files: [r], host: "db1", port: 22, key }), {
      status: "revoked",
      where: `${r}:2`,
    });
    assert.equal(check(r, "db1", 22, other), "changed", "the @cert-authority key was taken for a host key");
    assert.equal(check(file("ca", `@cert-authority ${line("db1", other)}`), "db1", 22, other), "unknown");
    assert.equal(check(file("marker", `@bogus ${line("db1", other)}`), "db1", 22, other), "unknown");
  });

  it("fingerprint: SHA256 of the blob in unpadded base64, as ssh-keygen -l", () => {
    const want = createHash("sha256").update(key).digest("base64");
    assert.equal(fingerprint(key), `SHA256:${want.replace(/=+$/, "")}`);
    assert.ok(!fingerprint(key).endsWith("="));
    assert.equal(keyType(rsa), "ssh-rsa");
  });

  it("appendHostKey records a key that is then known (file 0600, directory created 0700), hashed on request", () => {
    const p = path.join(dir, "new", "known_hosts");
    appendHostKey({ file: p, host: "db1", port: 2222, key: rsa, hash: false });
    assert.equal(check(p, "db1", 2222, rsa), "known");
    assert.equal(fs.statSync(p).mode & 0o777, 0o600);
    assert.equal(fs.statSync(path.dirname(p)).mode & 0o777, 0o700);
    assert.match(fs.readFileSync(p, "utf8"), /^\[db1\]:2222 ssh-rsa /);
    const h = path.join(dir, "hashed_new");
    appendHostKey({ file: h, host: "db1", port: 2222, key, hash: true });
    assert.match(fs.readFileSync(h, "utf8"), /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ ssh-ed25519 /);
    assert.ok(!fs.readFileSync(h, "utf8").includes("db1"));
    assert.equal(check(h, "db1", 2222, key), "known");
    assert.equal(check(h, "db2", 2222, key), "unknown");
  });
});
