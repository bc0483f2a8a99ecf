/** ssh config resolution as ssh does it: first value wins, Host/Match, Include, tokens, ProxyJump, overrides. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import { BlockdiffError } from "../../src/errors.ts";
import { localUserName } from "../../src/local_user.ts";
import {
  configPath,
  type HostRequest,
  loadSshConfig,
  parseJumpList,
  type ResolvedHost,
  resolveHost,
} from "../../src/ssh/ssh_config.ts";
import { it, tempDir } from "../helpers.ts";

describe("ssh config resolution", () => {
  let home = "";
  const saved = { HOME: process.env.HOME, BLOCKDIFF_SSH_CONFIG: process.env.BLOCKDIFF_SSH_CONFIG };
  before(() => {
    home = tempDir();
    fs.mkdirSync(path.join(home, ".ssh"));
    process.env.HOME = home;
    delete process.env.BLOCKDIFF_SSH_CONFIG;
  });
  after(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    fs.rmSync(home, { recursive: true, force: true });
  });

  const write = (name: string, text: string) => {
    const p = path.join(home, name);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    fs.writeFileSync(p, text);
    return p;
  };
  const request = (host: string, o: Partial<HostRequest> = {}): HostRequest => ({
    host,
    user: null,
    port: null,
    identity: null,
    knownHosts: null,
    acceptNewHostKey: false,
    proxyJump: null,
    ...o,
  });
  /** Resolves `host` with `text` as ~/.ssh/config; warnings collected. */
  const resolve = (text: string, host: string, o: Partial<HostRequest> = {}) => {
    write(".ssh/config", text);
    const warnings: string[] = [];
    const r: ResolvedHost = resolveHost(loadSshConfig(null), request(host, o), (l) => warnings.push(l));
    return { ...r, warnings };
  };

  it("a Host alias: HostName, User, Port, IdentityFile; the first obtained value wins, IdentityFile adds up", () => {
    const text = [
      "User globaluser",
      "Host db1 db1.example.com",
      "  HostName 10.0.0.5",
      "  Port 2222",
      "  IdentityFile ~/.ssh/db1_key",
      "Host db*",
      "  HostName wrong",
      "  User dbuser",
      "  IdentityFile ~/.ssh/db_key",
      "Host *",
      "  Port 22",
      "",
    ].join("\n");
    const r = resolve(text, "db1");
    assert.equal(r.hostName, "10.0.0.5");
    assert.equal(r.port, 2222);
    assert.equal(r.user, "globaluser", "a global User before the Host blocks comes first");
    assert.deepEqual(r.identityFiles, [path.join(home, ".ssh/db1_key"), path.join(home, ".ssh/db_key")]);
    assert.equal(r.hostNameFrom, path.join(home, ".ssh/config"));
    const plain = resolve(text, "web1");
    assert.equal(plain.hostName, "web1");
    assert.equal(plain.port, 22);
    assert.equal(plain.hostNameFrom, null);
    assert.deepEqual(
      plain.identityFiles,
      ["id_ed25519", "id_ecdsa", "id_rsa"].map((k) => path.join(home, ".ssh", k)),
    );
  });

  it("the command line comes first: user@, :port, -i (tried first), --known-hosts, --accept-new-host-key", () => {
    const text = "Host db\n  User cfg\n  Port 2200\n  IdentityFile ~/k\n  StrictHostKeyChecking yes\n" +
      "  UserKnownHostsFile ~/kh\n";
    const r = resolve(text, "db", {
      user: "cli",
      port: 2201,
      identity: "/keys/cli",
      knownHosts: "/kh/cli",
      acceptNewHostKey: true,
    });
    assert.equal(r.user, "cli");
    assert.equal(r.port, 2201);
    assert.deepEqual(r.identityFiles, ["/keys/cli", path.join(home, "k")]);
    assert.equal(r.requiredIdentity, "/keys/cli");
    assert.deepEqual(r.knownHostsFiles, ["/kh/cli"]);
    assert.equal(r.strictHostKeyChecking, "accept-new");
    const c = resolve(text, "db");
    assert.deepEqual([c.user, c.port, c.strictHostKeyChecking], ["cfg", 2200, "yes"]);
    assert.deepEqual(c.knownHostsFiles, [path.join(home, "kh")]);
  });

  it("Host patterns: *, ?, negation (which excludes whatever else matches), case-insensitive", () => {
    const text = "Host *.prod !db3.prod\n  User produser\nHost web?\n  User webuser\nHost !x\n  User never\n";
    assert.equal(resolve(text, "db1.prod").user, "produser");
    assert.equal(resolve(text, "DB1.PROD").user, "produser");
    assert.equal(resolve(text, "db3.prod").user, localUserName());
    assert.equal(resolve(text, "web1").user, "webuser");
    assert.equal(resolve(text, "web12").user, localUserName(), "? matched two characters");
  });

  it("Match host/originalhost/user/localuser/all apply; other criteria skip the block with a warning", () => {
    const text = [
      "Host db1",
      "  HostName db1.internal",
      "Match host *.internal user deploy",
      "  Port 2201",
      "Match originalhost db1 !localuser nosuchlocaluser",
      "  IdentityFile ~/m1",
      'Match exec "true"',
      "  User fromexec",
      "Match all",
      "  User fromall",
      "",
    ].join("\n");
    const r = resolve(text, "db1", { user: "deploy" });
    assert.equal(r.port, 2201, "Match host compares the HostName");
    assert.deepEqual(r.identityFiles, [path.join(home, "m1")]);
    assert.equal(r.user, "deploy");
    assert.equal(r.warnings.length, 1);
    assert.match(
      r.warnings[0],
      /^warning: .*config: 'Match exec' is not supported by blockdiff: that block is ignored$/,
    );
    const other = resolve(text, "db1");
    assert.equal(other.user, "fromall", "Match exec ran, or Match all did not apply");
    assert.equal(other.port, 22, "Match user matched another user");
  });

  it("%-tokens and ~ in IdentityFile and UserKnownHostsFile; %h in HostName; `none`", () => {
    const text = [
      "Host *.short",
      "  HostName %h.example.com",
      "Host *",
      "  User ops",
      "  Port 2022",
      "  IdentityFile %d/keys/%r@%h:%p-%n-%u-%%",
      "  UserKnownHostsFile ~/.ssh/kh_%h ~/.ssh/kh2",
      "  GlobalKnownHostsFile none",
      "",
    ].join("\n");
    const r = resolve(text, "db.short");
    assert.equal(r.hostName, "db.short.example.com");
    assert.deepEqual(r.identityFiles, [
      path.join(home, `keys/ops@db.short.example.com:2022-db.short-${localUserName()}-%`),
    ]);
    assert.deepEqual(r.knownHostsFiles, [
      path.join(home, ".ssh/kh_db.short.example.com"),
      path.join(home, ".ssh/kh2"),
    ]);
    assert.deepEqual(r.globalKnownHostsFiles, []);
    assert.throws(() => resolve("IdentityFile ~/%Z\n", "x"), /unknown or unsupported token '%Z'/);
  });

  it("Include: files and wildcards relative to ~/.ssh, in lexical order, under the including block's condition", () => {
    write(".ssh/conf.d/20-db", "Host db\n  Port 2020\n  User second\n");
    write(".ssh/conf.d/10-db", "Host db\n  User first\n");
    write(".ssh/conf.d/.hidden", "Host db\n  User hidden\n");
    write(".ssh/only-web", "User webinclude\nHost *\n  Port 2999\n");
    write("abs-include", "Host db\n  HostName abs.example\n");
    const text = `Include ${
      path.join(home, "abs-include")
    }\nInclude conf.d/*\nHost web\n  Include only-web\n`;
    const r = resolve(text, "db");
    assert.deepEqual([r.hostName, r.user, r.port], ["abs.example", "first", 2020]);
    const web = resolve(text, "web");
    assert.deepEqual([web.user, web.port], ["webinclude", 2999]);
    const mail = resolve(text, "mail");
    assert.deepEqual(
      [mail.user, mail.port],
      [localUserName(), 22],
      "an Include inside Host web applied elsewhere",
    );
    write(".ssh/loop", "Include loop\n");
    assert.throws(() => resolve("Include loop\n", "x"), /Include nested more than 16 deep/);
  });

  it("ProxyJump: hops parsed as [user@]host[:port], `none`; ProxyCommand refused; the first of the two wins", () => {
    assert.deepEqual(parseJumpList("a,bob@b:2222,ssh://c@[::1]:22", "x"), [
      { user: null, host: "a", port: null },
      { user: "bob", host: "b", port: 2222 },
      { user: "c", host: "::1", port: 22 },
    ]);
    assert.throws(() => parseJumpList("a:99999", "f"), /ProxyJump hop 'a:99999' is not/);
    assert.deepEqual(resolve("Host db\n  ProxyJump bastion\n", "db").proxyJump, [
      { user: null, host: "bastion", port: null },
    ]);
    assert.deepEqual(resolve("Host db\n  ProxyJump none\nHost *\n  ProxyJump bastion\n", "db").proxyJump, []);
    assert.deepEqual(
      resolve("Host db\n  ProxyJump b\n", "db", { proxyJump: [{ user: null, host: "a", port: null }] })
        .proxyJump,
      [{ user: null, host: "a", port: null }],
      "the hops before this one replace its own ProxyJump",
    );
    assert.throws(() => resolve("Host db\n  ProxyCommand nc %h %p\n", "db"), /ProxyCommand is not supported/);
    assert.deepEqual(resolve("Host db\n  ProxyJump b\n  ProxyCommand nc %h %p\n", "db").proxyJump.length, 1);
  });

  it("bad values are one clear error; StrictHostKeyChecking's spellings; -F, env, `none`, a missing file", () => {
    assert.throws(() => resolve("Port 70000\n", "x"), (e: Error) => {
      assert.ok(e instanceof BlockdiffError);
      return /Port must be 1-65535, not '70000'/.test(e.message);
    });
    assert.throws(() => resolve("StrictHostKeyChecking maybe\n", "x"), /StrictHostKeyChecking must be yes/);
    assert.throws(() => resolve('Host x\n  HostName "unterminated\n', "x"), /ssh config .*config: /);
    for (const [v, want] of [["no", "no"], ["off", "no"], ["accept-new", "accept-new"], ["ask", "ask"]]) {
      assert.equal(resolve(`StrictHostKeyChecking ${v}\n`, "x").strictHostKeyChecking, want);
    }
    assert.equal(resolve("", "x").strictHostKeyChecking, "ask");
    assert.deepEqual(resolve("", "x").knownHostsFiles, [
      path.join(home, ".ssh/known_hosts"),
      path.join(home, ".ssh/known_hosts2"),
    ]);
    assert.deepEqual(configPath(null), { file: path.join(home, ".ssh/config"), required: false });
    assert.deepEqual(configPath("none"), { file: null, required: false });
    assert.deepEqual(configPath("~/other"), { file: path.join(home, "other"), required: true });
    process.env.BLOCKDIFF_SSH_CONFIG = path.join(home, "from-env");
    try {
      assert.deepEqual(configPath(null), { file: path.join(home, "from-env"), required: true });
      assert.throws(() => loadSshConfig(null), /cannot read ssh config .*from-env/);
    } finally {
      delete process.env.BLOCKDIFF_SSH_CONFIG;
    }
    fs.rmSync(path.join(home, ".ssh/config"));
    assert.deepEqual(loadSshConfig(null), { file: null, lines: [] }, "a missing ~/.ssh/config is empty");
  });
});
