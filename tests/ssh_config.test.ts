/**
 * ~/.ssh/config and known_hosts honoured as OpenSSH does, against real sshds on loopback: Host aliases,
 * ProxyJump through a second sshd, UserKnownHostsFile + StrictHostKeyChecking, known_hosts patterns,
 * fingerprints in refusals, the local user from the uid, and connection failures as one line with a hint.
 * Each run gets a HOME of its own (a temp dir with .ssh/config), never the real ~/.ssh.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import {
  changeBlocks,
  expectFailure,
  freePort,
  it,
  pseudoRandom,
  run,
  type Target,
  targets,
  tempDir,
} from "./helpers.ts";
import { type Sshd, sshdAvailable, startSshd } from "./sshd.ts";

const BS = 4096;

describe(
  "ssh config and known_hosts as OpenSSH",
  { skip: !sshdAvailable() && !process.env.CI && "needs root and sshd" },
  () => {
    let sshd: Sshd;
    let jump: Sshd;
    let dir = "";
    let home = "";
    before(async () => {
      sshd = await startSshd();
      // logs each forwarding request; has an ECDSA host key too
      jump = await startSshd({ logLevel: "DEBUG1", moreHostKeys: ["ecdsa"] });
      dir = tempDir();
      home = path.join(dir, "home");
      fs.mkdirSync(path.join(home, ".ssh"), { recursive: true, mode: 0o700 });
    });
    after(() => {
      sshd?.stop();
      jump?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** Writes HOME/.ssh/config. */
    const config = (text: string) => fs.writeFileSync(path.join(home, ".ssh", "config"), text);
    /** A file under HOME. */
    const inHome = (name: string) => path.join(home, name);
    /** The environment of a run: our HOME, no agent; `extra` may remove variables (undefined). */
    const env = (extra: Record<string, string | undefined> = {}) => {
      const e: Record<string, string> = {};
      for (const [k, v] of Object.entries({ ...process.env, HOME: home, SSH_AUTH_SOCK: "", ...extra })) {
        if (v !== undefined) e[k] = v;
      }
      return e;
    };
    /** Runs blockdiff with exactly `environment` (helpers' run adds process.env: removed ones stay out). */
    const blockdiff = (t: Target, args: string[], extra: Record<string, string | undefined> = {}) => {
      const environment = env(extra);
      const saved = { ...process.env };
      for (const k of Object.keys(process.env)) if (!(k in environment)) delete process.env[k];
      try {
        return run(t, args, { cwd: dir, env: environment });
      } finally {
        Object.assign(process.env, saved);
      }
    };
    const image = (name: string, seed: number, blocks = 24) => {
      const p = path.join(dir, name);
      fs.writeFileSync(p, pseudoRandom(BS * blocks + 123, seed));
      return p;
    };
    const hostKey = (s: Sshd) => s.hostKeyLine; // "ssh-ed25519 AAAA..."
    /** known_hosts text for both servers under their [127.0.0.1]:port names. */
    const bothKnown = () =>
      `[127.0.0.1]:${sshd.port} ${hostKey(sshd)}\n[127.0.0.1]:${jump.port} ${hostKey(jump)}\n`;
    const keygenFingerprint = (s: Sshd) =>
      execFileSync("ssh-keygen", ["-lf", path.join(s.dir, "host_key.pub")]).toString().split(" ")[1];

    for (const t of targets()) {
      it(`(${t.name}) a Host alias with HostName, User, Port and IdentityFile (~, %d) backs up and restores exactly`, async () => {
        fs.mkdirSync(inHome("keys"), { recursive: true });
        fs.copyFileSync(sshd.clientKey, inHome("keys/db1_key"));
        fs.writeFileSync(inHome(".ssh/kh_alias"), `[127.0.0.1]:${sshd.port} ${hostKey(sshd)}\n`);
        config(
          [
            "Host other",
            "  User nobody",
            `Host db1 db1-*`,
            "  HostName 127.0.0.1",
            "  User root",
            `  Port ${sshd.port}`,
            "  IdentityFile ~/keys/missing_key", // not there: skipped, as ssh does
            "  IdentityFile %d/keys/%n_key",
            "  UserKnownHostsFile ~/.ssh/kh_alias",
            "Host *",
            "  User nobody", // too late: the first obtained value wins
            "  Port 1",
            "",
          ].join("\n"),
        );
        const src = image(`alias-${t.name}.img`, 1);
        const versions: Buffer[] = [];
        for (let g = 1; g <= 2; g++) {
          if (g === 2) changeBlocks(src, BS, 3, 2, 7);
          versions.push(fs.readFileSync(src));
          const r = await blockdiff(t, [
            "backup",
            `alias-${t.name}`,
            `db1:${src}`,
            "--block-size",
            String(BS),
          ]);
          assert.equal(r.code, 0, r.stderr);
        }
        for (let g = 1; g <= 2; g++) {
          const out = path.join(dir, `alias-${t.name}-${g}.out`);
          const r = await blockdiff(t, ["restore", `alias-${t.name}`, out, "-g", String(g)]);
          assert.equal(r.code, 0, r.stderr);
          assert.ok(fs.readFileSync(out).equals(versions[g - 1]), `generation ${g} differs`);
        }
        // the manifest records the user logged in as (the config's), with the host as given
        const m = JSON.parse(fs.readFileSync(path.join(dir, `alias-${t.name}.2.json`), "utf8"));
        assert.equal(m.source, `root@db1:${src}`);
        // the command line comes first: user@ and -F
        const r = await blockdiff(t, ["backup", `alias-${t.name}`, `nobody@db1:${src}`]);
        expectFailure(r, 1, /ssh nobody@\[db1\]:\d+: authentication as 'nobody' failed/);
        const r2 = await blockdiff(t, ["backup", `alias-${t.name}`, `db1:${src}`, "-F", "none"]);
        expectFailure(r2, 1, /cannot resolve host 'db1' \(not in DNS\/hosts, nor a Host in/);
      });

      it(`(${t.name}) ProxyJump: through a second sshd (alias, and a chain of two hops), each with its own key`, async () => {
        fs.writeFileSync(inHome(".ssh/kh_jump"), bothKnown());
        config(
          [
            "Host jumphost",
            "  HostName 127.0.0.1",
            `  Port ${jump.port}`,
            `  IdentityFile ${jump.clientKey}`,
            "Host behind behind2",
            "  HostName 127.0.0.1",
            `  Port ${sshd.port}`,
            `  IdentityFile ${sshd.clientKey}`,
            "Host behind",
            "  ProxyJump jumphost",
            "Host behind2",
            "  ProxyJump jumphost,root@jumphost", // to the jump host, through itself, then on
            "Host *",
            "  User root",
            "  UserKnownHostsFile ~/.ssh/kh_jump",
            "",
          ].join("\n"),
        );
        const src = image(`jump-${t.name}.img`, 2);
        const forwards = () =>
          jump.log().match(new RegExp(`target 127\\.0\\.0\\.1 port ${sshd.port}\\b`, "g"))?.length ?? 0;
        const hops = () =>
          jump.log().match(new RegExp(`target 127\\.0\\.0\\.1 port ${jump.port}\\b`, "g"))?.length ?? 0;
        const before = forwards();
        const r = await blockdiff(t, [
          "backup",
          `jump-${t.name}`,
          `behind:${src}`,
          "--block-size",
          String(BS),
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(forwards() - before, 1, "the jump host did not forward to the target");
        const out = path.join(dir, `jump-${t.name}.out`);
        assert.equal((await blockdiff(t, ["restore", `jump-${t.name}`, out])).code, 0);
        assert.ok(fs.readFileSync(out).equals(fs.readFileSync(src)));

        const hopsBefore = hops();
        const r2 = await blockdiff(t, ["backup", `jump2-${t.name}`, `behind2:${src}`]);
        assert.equal(r2.code, 0, r2.stderr);
        assert.equal(hops() - hopsBefore, 1, "the first hop did not carry the second");
        assert.equal(forwards() - before, 2);

        // hops in order: the first one is reached first (here it refuses), the target last
        const closed = await freePort(); // nothing listens there
        config(
          `Host jumphost\n  HostName 127.0.0.1\n  Port ${jump.port}\n  IdentityFile ${jump.clientKey}\n` +
            `Host behind\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  ProxyJump 127.0.0.1:${closed},jumphost\n` +
            `Host *\n  User root\n  UserKnownHostsFile ~/.ssh/kh_jump\n`,
        );
        expectFailure(
          await blockdiff(t, ["backup", `jump-${t.name}`, `behind:${src}`]),
          1,
          new RegExp(
            `ssh root@\\[127\\.0\\.0\\.1\\]:${closed} \\(jump host for root@\\[jumphost\\]:${jump.port}\\): ` +
              `connection refused by 127\\.0\\.0\\.1:${closed} `,
          ),
        );
        // the jump host cannot reach the target: one line that says which
        config(
          `Host jumphost\n  HostName 127.0.0.1\n  Port ${jump.port}\n  IdentityFile ${jump.clientKey}\n` +
            `Host behind\n  HostName 127.0.0.1\n  Port 1\n  ProxyJump jumphost\n` +
            `Host *\n  User root\n  UserKnownHostsFile ~/.ssh/kh_jump\n`,
        );
        expectFailure(
          await blockdiff(t, ["backup", `jump-${t.name}`, `behind:${src}`]),
          1,
          /ssh root@\[behind\]:1: the jump host root@\[jumphost\]:\d+ cannot reach 127\.0\.0\.1:1: /,
        );
      });

      it(`(${t.name}) security: UserKnownHostsFile + StrictHostKeyChecking accept-new records the key there (hashed with HashKnownHosts)`, async () => {
        const src = image(`new-${t.name}.img`, 3, 4);
        for (const hashed of [false, true]) {
          const kh = inHome(`.ssh/kh_new_${hashed}_${t.name}`);
          const cfg = (strict: string) =>
            config(
              `Host db\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User root\n  IdentityFile ${sshd.clientKey}\n` +
                `  UserKnownHostsFile ${kh}\n  StrictHostKeyChecking ${strict}\n  HashKnownHosts ${
                  hashed ? "yes" : "no"
                }\n`,
            );
          cfg("yes");
          expectFailure(
            await blockdiff(t, ["backup", `new-${t.name}`, `db:${src}`]),
            1,
            /unknown host key \(not in .*kh_new.*\); check it/,
          );
          assert.ok(!fs.existsSync(kh));
          cfg("accept-new");
          const r = await blockdiff(t, ["backup", `new-${t.name}`, `db:${src}`]);
          assert.equal(r.code, 0, r.stderr);
          const recorded = fs.readFileSync(kh, "utf8");
          if (hashed) {
            assert.match(recorded, /^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ /);
            assert.ok(recorded.endsWith(` ${hostKey(sshd)}\n`) && !recorded.includes("127.0.0.1"), recorded);
            assert.equal(recorded.split("\n").length, 2);
          } else assert.equal(recorded, `[127.0.0.1]:${sshd.port} ${hostKey(sshd)}\n`);
          cfg("yes");
          const again = await blockdiff(t, ["backup", `new-${t.name}`, `db:${src}`]);
          assert.equal(again.code, 0, again.stderr);
          assert.equal(fs.readFileSync(kh, "utf8"), recorded, "recorded twice");
        }
        // StrictHostKeyChecking no accepts a new key, but a changed one is refused all the same
        const kh = inHome(`.ssh/kh_no_${t.name}`);
        config(
          `Host db\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  User root\n  IdentityFile ${sshd.clientKey}\n` +
            `  UserKnownHostsFile ${kh}\n  StrictHostKeyChecking no\n`,
        );
        assert.equal((await blockdiff(t, ["backup", `new-${t.name}`, `db:${src}`])).code, 0);
        fs.writeFileSync(kh, `[127.0.0.1]:${sshd.port} ${hostKey(jump)}\n`);
        expectFailure(
          await blockdiff(t, ["backup", `new-${t.name}`, `db:${src}`]),
          1,
          /host key does not match .*possible man-in-the-middle attack\); refusing to connect/,
        );
      });

      it(`(${t.name}) security: known_hosts patterns: wildcards and [host]:port accepted; negation, another port and markers refused`, async () => {
        const src = image(`pat-${t.name}.img`, 4, 4);
        const kh = inHome(`.ssh/kh_pat_${t.name}`);
        const key = hostKey(sshd);
        const attempt = (lines: string) => {
          fs.writeFileSync(kh, lines);
          return blockdiff(t, [
            "backup",
            `pat-${t.name}`,
            `root@127.0.0.1:${sshd.port}:${src}`,
            "-i",
            sshd.clientKey,
            "-F",
            "none",
            "--known-hosts",
            kh,
          ]);
        };
        for (
          const accepted of [`[127.0.0.?]:${sshd.port}`, "[127.0.*]:*", `other,[127.0.0.1]:${sshd.port}`]
        ) {
          const r = await attempt(`${accepted} ${key}\n`);
          assert.equal(r.code, 0, `${accepted}: ${r.stderr}`);
        }
        for (
          const refused of [
            `[127.0.0.*]:*,![127.0.0.1]:${sshd.port} ${key}`, // negated
            `127.0.0.1 ${key}`, // port 22's name
            `[127.0.0.1]:${sshd.port + 1} ${key}`,
            `[127.0.0.1]:${sshd.port}0 ${key}`,
            `@cert-authority * ${key}`, // a CA key is not the host's key
          ]
        ) {
          expectFailure(await attempt(`${refused}\n`), 1, /unknown host key \(not in /);
        }
        expectFailure(
          await attempt(`[127.0.0.1]:${sshd.port} ${key}\n@revoked * ${key}\n`),
          1,
          /host key \(ssh-ed25519 key fingerprint SHA256:\S+\) is marked @revoked in .*:2; refusing/,
        );
      });

      it(`(${t.name}) security: a host known only by another key type (ECDSA) is asked for that type, as ssh does`, async () => {
        const src = image(`ktype-${t.name}.img`, 7, 4);
        const kh = inHome(`.ssh/kh_type_${t.name}`);
        fs.writeFileSync(kh, `[127.0.0.1]:${jump.port} ${jump.moreHostKeyLine("ecdsa")}\n`);
        const r = await blockdiff(t, [
          "backup",
          `ktype-${t.name}`,
          `root@127.0.0.1:${jump.port}:${src}`,
          "-i",
          jump.clientKey,
          "-F",
          "none",
          "--known-hosts",
          kh,
        ]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(fs.readFileSync(kh, "utf8").split("\n").length, 2, "a key was added");
      });

      it(`(${t.name}) security: refusals show the SHA256 fingerprint that ssh-keygen -lf shows (unknown and changed key)`, async () => {
        const src = image(`fp-${t.name}.img`, 5, 4);
        const kh = inHome(`.ssh/kh_fp_${t.name}`);
        const args = [
          "backup",
          `fp-${t.name}`,
          `root@127.0.0.1:${sshd.port}:${src}`,
          "-i",
          sshd.clientKey,
          "--known-hosts",
          kh,
        ];
        const fp = keygenFingerprint(sshd);
        assert.match(fp, /^SHA256:[A-Za-z0-9+/]{43}$/);
        const unknown = await blockdiff(t, args);
        expectFailure(unknown, 1, /unknown host key/);
        assert.ok(unknown.stderr.includes(`ssh-ed25519 key fingerprint ${fp});`), unknown.stderr);
        fs.writeFileSync(kh, `# first\n[127.0.0.1]:${sshd.port} ${hostKey(jump)}\n`); // another server's key
        const changed = await blockdiff(t, [...args, "--accept-new-host-key"]);
        expectFailure(
          changed,
          1,
          /host key does not match .*:2 \(now ssh-ed25519 key fingerprint .*man-in-the-middle/,
        );
        assert.ok(changed.stderr.includes(fp), changed.stderr);
      });

      it(`(${t.name}) without User or user@, the user is the uid's, whatever $USER says (cron has none)`, async () => {
        const src = image(`user-${t.name}.img`, 6, 4);
        config(
          `Host db\n  HostName 127.0.0.1\n  Port ${sshd.port}\n  IdentityFile ${sshd.clientKey}\n` +
            `  UserKnownHostsFile ${sshd.knownHosts}\n`,
        );
        const uidName = execFileSync("id", ["-un"]).toString().trim();
        for (const user of [undefined, "nosuchuser"]) {
          const r = await blockdiff(t, ["backup", `user-${t.name}`, `db:${src}`, "--log", "user.log"], {
            USER: user,
            LOGNAME: user,
          });
          assert.equal(r.code, 0, `USER=${user}: ${r.stderr}`);
        }
        const m = JSON.parse(fs.readFileSync(path.join(dir, `user-${t.name}.1.json`), "utf8"));
        assert.equal(m.source, `root@db:${src}`); // the uid's user, recorded
        assert.equal(uidName, "root");
      });

      it(`(${t.name}) fault: an unresolvable host and a refused port fail with one line and a hint`, async () => {
        config(`Host typo\n  HostName nosuchhost-blockdiff.invalid\n`);
        const src = "/nonexistent.img";
        expectFailure(
          await blockdiff(t, ["backup", `dns-${t.name}`, `nosuchalias-blockdiff.invalid:${src}`]),
          1,
          /cannot resolve host 'nosuchalias-blockdiff\.invalid' \(not in DNS\/hosts, nor a Host in ~\/\.ssh\/config\)$/,
        );
        expectFailure(
          await blockdiff(t, ["backup", `dns-${t.name}`, `typo:${src}`]),
          1,
          /cannot resolve host 'nosuchhost-blockdiff\.invalid' \(the HostName of 'typo' in ~\/\.ssh\/config\)$/,
        );
        const closed = await freePort(); // nothing listens there
        expectFailure(
          await blockdiff(t, ["backup", `refused-${t.name}`, `127.0.0.1:${closed}:${src}`]),
          1,
          new RegExp(
            `connection refused by 127\\.0\\.0\\.1:${closed} \\(is sshd running on that port\\?\\)$`,
          ),
        );
        // a server that accepts but never speaks SSH: ConnectTimeout bounds the wait
        const silent = net.createServer(() => {});
        await new Promise<void>((r) => silent.listen(0, "127.0.0.1", r));
        try {
          const port = (silent.address() as net.AddressInfo).port;
          config(`Host silent\n  HostName 127.0.0.1\n  Port ${port}\n  ConnectTimeout 1\n`);
          const started = Date.now();
          expectFailure(
            await blockdiff(t, ["backup", `silent-${t.name}`, `silent:${src}`]),
            1,
            new RegExp(`no SSH handshake with 127\\.0\\.0\\.1:${port} within 1 s \\(host down, a firewall`),
          );
          assert.ok(Date.now() - started < 15000, "ConnectTimeout was not used");
        } finally {
          silent.close();
        }
      });
    }
  },
);
