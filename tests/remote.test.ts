/** Remote backups over a real loopback sshd: host keys, quoting, agent upload, truncated output. */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import {
  BINARY,
  changeBlocks,
  expectFailure,
  it,
  listDir,
  pseudoRandom,
  run,
  start,
  type Target,
  targets,
  tempDir,
  waitUntil,
} from "./helpers.ts";
import { type Sshd, sshdAvailable, startSshd } from "./sshd.ts";
import { shaCacheFile } from "../src/remote/self_sha.ts";
import { sha256Command } from "../src/remote/install.ts";
import { shellQuote } from "../src/ssh/quote.ts";
import { HASH_LINE, launchCommand } from "../src/remote/launch.ts";

const BS = 4096;

describe("the remote hash command", () => {
  it("prints the SHA-256 with openssl, and with sha256sum where openssl is missing", () => {
    const dir = tempDir();
    try {
      const file = path.join(dir, "it's a file");
      fs.writeFileSync(file, pseudoRandom(100000, 3));
      const want = createHash("sha256").update(fs.readFileSync(file)).digest("hex");
      // Each way alone: a PATH with only openssl (and cut), then one with only sha256sum.
      for (const tool of ["openssl", "sha256sum"]) {
        const bin = path.join(dir, tool);
        fs.mkdirSync(bin);
        for (const t of [tool, "cut"]) {
          fs.symlinkSync(execFileSync("sh", ["-c", `command -v ${t}`]).toString().trim(), path.join(bin, t));
        }
        const out = execFileSync("/bin/sh", ["-c", sha256Command(shellQuote(file))], { env: { PATH: bin } });
        assert.equal(out.toString().trim(), want, tool);
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("the agent launch command", () => {
  // Each POSIX shell a login shell may be; the command runs in it as sshd would run it (`SHELL -c TEXT`).
  const shells = [
    ...new Map(
      ["/bin/sh", "/bin/bash", "/bin/dash"].filter((s) => fs.existsSync(s)).map((
        s,
      ) => [fs.realpathSync(s), s]),
    ).values(),
  ];
  const fakeAgent = `#!/bin/sh\necho "ran $*"; cat\n`; // prints its arguments, then what came on stdin
  const args = ["agent", "dump", "/it's a path"];

  function setup() {
    const home = tempDir();
    const bin = path.join(home, "bin");
    fs.mkdirSync(bin);
    for (const t of ["openssl", "sha256sum", "cut", "stat", "cat", "nice"]) {
      const found = spawnSync("sh", ["-c", `command -v ${t}`]).stdout.toString().trim();
      if (found) fs.symlinkSync(found, path.join(bin, t));
    }
    const self = {
      sha: createHash("sha256").update(fakeAgent).digest("hex"),
      size: fakeAgent.length,
      version: "9.9.9",
    };
    const cached = path.join(home, ".cache", "blockdiff", self.sha, "blockdiff");
    const launch = (shell: string, verifyFirst: boolean, prefix = "") => {
      const r = spawnSync(shell, ["-c", launchCommand({ args, prefix, verifyFirst, self })], {
        env: { HOME: home, PATH: bin },
        input: "old digest bytes",
      });
      return { code: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
    };
    const put = (file: string, text: string) => {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.writeFileSync(file, text, { mode: 0o700 });
    };
    return { home, bin, self, cached, launch, put };
  }

  for (const shell of shells) {
    it(`(${shell}) says U where there is no agent, runs a cached copy of the right size and hashes it alongside`, () => {
      const { home, self, cached, launch, put } = setup();
      try {
        assert.deepEqual(launch(shell, false), { code: 0, out: "U", err: "" });
        put(cached, fakeAgent);
        const r = launch(shell, false, "nice -n 5");
        assert.equal(r.code, 0, r.err);
        // the background hash job leaves the agent's stdin (the old digest) alone
        assert.equal(r.out, `Cran agent dump /it's a path\nold digest bytes`);
        assert.equal(r.err, `${HASH_LINE} ${self.sha}\n`);
        put(cached, fakeAgent.replace("ran", "RAN")); // same size, other bytes: runs, the hash tells
        assert.match(launch(shell, false).err, new RegExp(`^${HASH_LINE} (?!${self.sha})[0-9a-f]{64}\n$`));
        put(cached, fakeAgent + "\n"); // another size: not run
        assert.equal(launch(shell, false).out, "U");
      } finally {
        fs.rmSync(home, { recursive: true, force: true });
      }
    });

    it(`(${shell}) before a snapshot runs only a copy whose hash is right; a same-version blockdiff on PATH`, () => {
      const { home, bin, cached, launch, put } = setup();
      try {
        put(cached, fakeAgent);
        assert.deepEqual(launch(shell, true), {
          code: 0,
          out: `Vran agent dump /it's a path\nold digest bytes`,
          err: "",
        });
        put(cached, fakeAgent.replace("ran", "RAN"));
        assert.equal(launch(shell, true).out, "U");
        fs.rmSync(cached);
        put(
          path.join(bin, "blockdiff"),
          `#!/bin/sh\n[ "$1" = --version ] && echo "blockdiff 9.9.8" && exit\necho "path $*"\n`,
        );
        assert.equal(launch(shell, false).out, "U", "another version ran");
        put(
          path.join(bin, "blockdiff"),
          `#!/bin/sh\n[ "$1" = --version ] && echo "blockdiff 9.9.9" && exit\necho "path $*"\n`,
        );
        assert.deepEqual(launch(shell, false), { code: 0, out: `Ppath agent dump /it's a path\n`, err: "" });
      } finally {
        fs.rmSync(home, { recursive: true, force: true });
      }
    });
  }
});

describe(
  "remote backups over SSH",
  { skip: !sshdAvailable() && !process.env.CI && "needs root and sshd" },
  () => {
    let sshd: Sshd;
    let dir = "";
    before(async () => {
      sshd = await startSshd();
      dir = tempDir();
    });
    after(() => {
      sshd?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** A source path with spaces, quotes and a command substitution that must never run. */
    const markerName = `blockdiff-pwned-${process.pid}`; // a remote shell would create it in its cwd (home)
    const hostile = () =>
      path.join(dir, `src dir/it's a "file" $(touch ${markerName}) \`touch ${markerName}\`.img`);
    const url = (p: string) => `root@127.0.0.1:${sshd.port}:${p}`;
    const sshArgs = (known = sshd.knownHosts) => ["-i", sshd.clientKey, "--known-hosts", known];
    const binaryTarget = () => targets().find((x) => x.name === "binary");
    let builtSha: string | undefined;
    /** SHA-256 of the built binary, read once for all the tests that need it. */
    const binarySha = () => builtSha ??= createHash("sha256").update(fs.readFileSync(BINARY)).digest("hex");
    const AGENT_CACHE = path.join(os.homedir(), ".cache", "blockdiff");
    const remote = (t: Target, args: string[], env: Record<string, string> = {}) =>
      run(t, args, { cwd: dir, env: { SSH_AUTH_SOCK: "", ...env } });

    for (const t of targets()) {
      it(`(${t.name}) security: full + incrementals of a hostile path restore exactly; nothing runs on the remote`, async () => {
        fs.mkdirSync(path.join(dir, "src dir"), { recursive: true });
        const src = hostile();
        const versions: Buffer[] = [];
        for (const [i, compression] of ["none", "gzip", "zstd"].entries()) {
          if (i === 0) fs.writeFileSync(src, pseudoRandom(BS * 40 + 77, 1));
          else changeBlocks(src, BS, 3 * i, 2, i + 1);
          versions.push(fs.readFileSync(src));
          const spec = i === 1 ? `ssh://root@127.0.0.1:${sshd.port}${src}` : url(src);
          const r = await remote(t, [
            "backup",
            `r-${t.name}`,
            spec,
            "--block-size",
            String(BS),
            "--compress",
            compression,
            ...sshArgs(),
          ]);
          assert.equal(r.code, 0, r.stderr);
        }
        for (let g = 1; g <= 3; g++) {
          const out = path.join(dir, `r-${t.name}-${g}.img`);
          assert.equal((await remote(t, ["restore", `r-${t.name}`, out, "-g", String(g)])).code, 0);
          assert.ok(fs.readFileSync(out).equals(versions[g - 1]), `generation ${g} differs`);
        }
        const m = JSON.parse(fs.readFileSync(path.join(dir, `r-${t.name}.3.json`), "utf8"));
        assert.equal(m.source, url(src));
        assert.equal(m.blocksChanged, 2);
        for (const d of [os.homedir(), dir, "/"]) {
          assert.ok(!fs.existsSync(path.join(d, markerName)), "a remote shell ran the $(...) in the path");
        }
      });

      it(`(${t.name}) security: unknown host refused; --accept-new-host-key records it; a changed key is always refused`, async () => {
        fs.writeFileSync(path.join(dir, "s.img"), pseudoRandom(BS * 4, 5));
        const known = path.join(dir, `kh-${t.name}`);
        const args = (
          extra: string[] = [],
        ) => ["backup", `k-${t.name}`, url(path.join(dir, "s.img")), ...sshArgs(known), ...extra];
        expectFailure(
          await remote(t, args()),
          1,
          /unknown host key \(not in .*\); check it and run again with --accept-new-host-key/,
        );
        assert.deepEqual(
          listDir(dir).filter((f) => f.startsWith(`k-${t.name}.`)),
          [`k-${t.name}.lock`],
          "a refused run left files (but the chain's lock file)",
        );
        assert.equal((await remote(t, args(["--accept-new-host-key"]))).code, 0);
        assert.match(
          fs.readFileSync(known, "utf8"),
          new RegExp(`^\\[127\\.0\\.0\\.1\\]:${sshd.port} ssh-ed25519 `),
        );
        assert.equal((await remote(t, args())).code, 0, "a recorded key is accepted without the flag");
        const other = path.join(dir, `other-${t.name}`);
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", other]);
        const otherKey = fs.readFileSync(other + ".pub", "utf8").split(" ").slice(0, 2).join(" ");
        fs.writeFileSync(known, `[127.0.0.1]:${sshd.port} ${otherKey}\n`);
        expectFailure(
          await remote(t, args(["--accept-new-host-key"])),
          1,
          /host key does not match .*possible man-in-the-middle/,
        );
        assert.equal(fs.readFileSync(path.join(dir, `k-${t.name}.ver`), "utf8"), "2\n");
      });

      it(`(${t.name}) fault: truncated or corrupted agent output fails the run and keeps .ver; SSH_BLOCKDIFF_PREFIX is used`, async () => {
        fs.writeFileSync(path.join(dir, "t.img"), pseudoRandom(BS * 64, 6));
        const args = [
          "backup",
          `t-${t.name}`,
          url(path.join(dir, "t.img")),
          "--block-size",
          String(BS),
          ...sshArgs(),
        ];
        assert.equal((await remote(t, args, { SSH_BLOCKDIFF_PREFIX: "nice -n 5" })).code, 0);
        changeBlocks(path.join(dir, "t.img"), BS, 0, 30, 7);
        const cut = `sh -c '"$@" | head -c 60000' sh`;
        expectFailure(
          await remote(t, args, { SSH_BLOCKDIFF_PREFIX: cut }),
          3,
          /agent output from .* is truncated/,
        );
        assert.equal(fs.readFileSync(path.join(dir, `t-${t.name}.ver`), "utf8"), "1\n");
        assert.ok(!listDir(dir).some((f) => f.includes(".tmp-")));
        const flip = `sh -c '"$@" | head -c 60000; printf "\\\\377"' sh`;
        expectFailure(
          await remote(t, args, { SSH_BLOCKDIFF_PREFIX: flip }),
          3,
          /agent output corrupt|truncated/,
        );
        assert.equal((await remote(t, args)).code, 0, "the next run succeeds");
        assert.equal((await remote(t, ["verify", `t-${t.name}`])).code, 0);
      });

      it(`(${t.name}) fault: a missing remote source fails with one clear line`, async () => {
        const r = await remote(t, ["backup", `m-${t.name}`, url("/nonexistent/x.img"), ...sshArgs()]);
        expectFailure(r, 1, /\/nonexistent\/x\.img: cannot open source \/nonexistent\/x\.img: no such file/);
      });

      it(`(${t.name}) performance: a backup opens one SSH session (finding, checking and running the agent)`, async () => {
        fs.writeFileSync(path.join(dir, "o.img"), pseudoRandom(BS * 8, 11));
        const args = ["backup", `o-${t.name}`, url(path.join(dir, "o.img")), ...sshArgs()];
        assert.equal((await remote(t, args)).code, 0); // the binary's agent is cached from here on
        const before = sshd.commandsStarted();
        assert.equal((await remote(t, args)).code, 0);
        await waitUntil(() => sshd.commandsStarted() - before >= 1, "sshd's session log", 5000, 20);
        await new Promise((r) => setTimeout(r, 200)); // a second session would be logged by now
        assert.equal(sshd.commandsStarted() - before, 1);
      });
    }

    for (const victim of ["sshd", "agent"] as const) {
      const what = victim === "sshd"
        ? "the SSH connection cut (sshd's child killed)"
        : "the remote agent killed";
      it(`fault: ${what} mid-stream fails the run, keeps .ver, leaves no agent; the next run succeeds`, async () => {
        const t = targets().at(-1)!;
        const name = `cut-${victim}`;
        fs.writeFileSync(path.join(dir, "c.img"), pseudoRandom(BS * 1024, 9));
        const args = (
          src: string,
        ) => ["backup", name, url(path.join(dir, src)), "--block-size", String(BS), ...sshArgs()];
        assert.equal((await remote(t, args("c.img"))).code, 0);
        const fifo = path.join(dir, `${name}.fifo`);
        execFileSync("mkfifo", [fifo]);
        const child = start(t, args(`${name}.fifo`), { cwd: dir, env: { SSH_AUTH_SOCK: "" } });
        const w = fs.openSync(fifo, "w"); // the agent opened it
        try {
          fs.writeSync(w, pseudoRandom(BS * 512, 10));
          await waitUntil(
            () => listDir(dir).some((f) => f.startsWith(`${name}.2.tmp-`)),
            "the dump to start",
          );
          if (victim === "sshd") {
            const master = fs.readFileSync(path.join(sshd.dir, "sshd.pid"), "utf8").trim();
            execFileSync("pkill", ["-KILL", "-P", master]);
          } else execFileSync("pkill", ["-KILL", "-f", "agent dump --block-size"]);
          const r = await child.done;
          expectFailure(
            r,
            1,
            victim === "sshd"
              ? /ssh .*: connection lost during the dump/
              : /agent on .* failed \(signal SIGKILL\)/,
          );
        } finally {
          child.child.kill("SIGKILL");
          fs.closeSync(w); // an agent still blocked on the fifo reads its end, writes, and dies of EPIPE
        }
        await waitUntil(
          () => spawnSync("pgrep", ["-f", "agent dump --block-size"]).status === 1,
          "the agent to go",
        );
        assert.equal(fs.readFileSync(path.join(dir, `${name}.ver`), "utf8"), "1\n");
        assert.ok(!listDir(dir).some((f) => f.includes(".tmp-")), "temporary files left");
        assert.equal((await remote(t, args("c.img"))).code, 0, "the next run succeeds");
        assert.equal((await remote(t, ["verify", name])).code, 0);
      });
    }

    it("(binary) security: uploads itself once into ~/.cache/blockdiff/SHA256 (mode 0700), verified by hash", async (ctx) => {
      const t = binaryTarget();
      if (!t) return ctx.skip("binary not built");
      const sha = binarySha();
      const cache = AGENT_CACHE;
      fs.rmSync(path.join(cache, sha), { recursive: true, force: true });
      fs.writeFileSync(path.join(dir, "u.img"), pseudoRandom(BS * 8, 8));
      const args = ["backup", "up", url(path.join(dir, "u.img")), "--log", "up.log", ...sshArgs()];
      assert.equal((await remote(t, args)).code, 0);
      assert.match(fs.readFileSync(path.join(dir, "up.log"), "utf8"), /uploading blockdiff/);
      for (const d of [cache, path.join(cache, sha)]) assert.equal(fs.statSync(d).mode & 0o777, 0o700, d);
      const uploaded = path.join(cache, sha, "blockdiff");
      assert.equal(createHash("sha256").update(fs.readFileSync(uploaded)).digest("hex"), sha);
      assert.equal((await remote(t, args)).code, 0);
      assert.equal(
        fs.readFileSync(path.join(dir, "up.log"), "utf8").match(/uploading/g)?.length,
        1,
        "uploaded twice",
      );
    });

    it("(binary) security: remembers its own SHA-256 only under the executable's identity", async (ctx) => {
      const t = binaryTarget();
      if (!t) return ctx.skip("binary not built");
      const sha = binarySha();
      const file = shaCacheFile();
      fs.writeFileSync(path.join(dir, "s.img"), pseudoRandom(BS * 8, 10));
      const args = ["backup", "selfsha", url(path.join(dir, "s.img")), ...sshArgs()];
      fs.rmSync(file, { force: true });
      assert.equal((await remote(t, args)).code, 0);
      const [key, remembered] = fs.readFileSync(file, "utf8").split("\n");
      assert.equal(remembered, sha);
      assert.equal(fs.statSync(file).mode & 0o777, 0o600);
      // Another identity (as after the binary was replaced) with a wrong sha: ignored and rewritten.
      fs.writeFileSync(
        file,
        `${key.replace(/:(\d+):/, (_, ino) => `:${Number(ino) + 1}:`)}\n${"0".repeat(64)}\n`,
      );
      assert.equal((await remote(t, args)).code, 0);
      assert.equal(fs.readFileSync(file, "utf8"), `${key}\n${sha}\n`);
    });

    it("(binary) security: a cached agent of the right size but other bytes fails the run, is removed, then replaced", async (ctx) => {
      const t = binaryTarget();
      if (!t) return ctx.skip("binary not built");
      const sha = binarySha();
      const cached = path.join(AGENT_CACHE, sha, "blockdiff");
      fs.writeFileSync(path.join(dir, "f.img"), pseudoRandom(BS * 8, 9));
      const args = ["backup", "foreign", url(path.join(dir, "f.img")), "--log", "f.log", ...sshArgs()];
      assert.equal((await remote(t, args)).code, 0); // uploads (or finds) the right copy
      const good = fs.readFileSync(cached);
      const bad = Buffer.from(good);
      bad[bad.length >> 1] ^= 0xff; // same size: only the hash tells
      fs.writeFileSync(cached, bad);
      const ver = fs.readFileSync(path.join(dir, "foreign.ver"), "utf8");
      const r = await remote(t, args);
      assert.equal(r.code, 3, r.stderr.toString());
      assert.match(r.stderr.toString(), /cached agent .* is not this blockdiff \(SHA-256 differs\)/);
      assert.equal(fs.readFileSync(path.join(dir, "foreign.ver"), "utf8"), ver, "a generation was kept");
      assert.ok(!fs.existsSync(cached), "the foreign copy is still there");
      assert.equal((await remote(t, args)).code, 0, "the next run uploads a fresh copy");
      assert.ok(fs.readFileSync(cached).equals(good));
    });
  },
);
