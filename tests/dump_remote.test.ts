/**
 * `blockdiff dump` of a remote SOURCE (over a real loopback sshd) against a local dump of the same file, and
 * `--snapshot-wrapper`: the gate's protocol and the wrapper run around what stands for the snapshot.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import { wrapperQuiesce } from "../src/snapshot/wrapper_quiesce.ts";
import { shellQuote } from "../src/ssh/quote.ts";
import {
  changeBlocks,
  expectFailure,
  it,
  pseudoRandom,
  referenceDump,
  ROOT,
  run,
  type Target,
  targets,
  tempDir,
  waitUntil,
} from "./helpers.ts";
import { type Sshd, sshdAvailable, startSshd } from "./sshd.ts";

const BS = 4096;

describe(
  "dump of a remote SOURCE over SSH",
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
    const ssh = () => ["-i", sshd.clientKey, "--known-hosts", sshd.knownHosts];

    /** `dump ARGS 5< old 6> new.md5 > diff` (old: a file, or "pipe:FILE" for fd 5 on a pipe). */
    function dump(
      t: Target,
      args: string[],
      o: { old: string | null; out: string; env?: Record<string, string> },
    ) {
      const q = (words: string[]) => words.map(shellQuote).join(" ");
      const five = o.old === null ? "" : o.old.startsWith("pipe:") ? "5<&0" : `5< ${shellQuote(o.old)}`;
      const script = `${o.old?.startsWith("pipe:") ? `cat ${shellQuote(o.old.slice(5))} | ` : ""}` +
        `${q([...t.cmd, "dump", ...args])} ${five} 6> ${shellQuote(o.out + ".md5")} > ${shellQuote(o.out)}`;
      // not spawnSync: the sshd's log comes through this process's event loop
      const child = spawn("sh", ["-c", script], {
        cwd: dir,
        env: { ...process.env, VERBOSE: "", BLOCKSIZE: "", SSH_AUTH_SOCK: "", ...o.env },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (d) => stderr += d);
      return new Promise<{ code: number | null; stderr: string }>((resolve) =>
        child.on("close", (code) => resolve({ code, stderr }))
      );
    }
    const read = (f: string) => fs.readFileSync(path.join(dir, f));
    /**
     * The same diff and digest. lzop puts the time into its header when it compresses a pipe (the original's
     * output too differs from second to second), so its diffs are compared decompressed.
     */
    const same = (a: string, b: string) => {
      const diff = (f: string) =>
        a.endsWith("--lzop") ? execFileSync("lzop", ["-dc"], { input: read(f) }) : read(f);
      assert.ok(diff(a).equals(diff(b)), `${a} differs from ${b}`);
      assert.ok(read(a + ".md5").equals(read(b + ".md5")), `${a}.md5 differs from ${b}.md5`);
    };

    for (const t of targets()) {
      it(`(${t.name}) equals a local dump byte for byte (--lzop decompressed): full, incremental from fd 5 (a file or a pipe), -z`, async () => {
        const src = path.join(dir, `src-${t.name}.img`);
        const remote = `root@127.0.0.1:${sshd.port}:${src}`;
        for (const flag of ["", "-z", "--lzop"]) {
          const tag = `${t.name}${flag}`;
          const opts = [...(flag ? [flag] : []), "--block-size", String(BS)];
          fs.writeFileSync(src, pseudoRandom(BS * 40 + 77, 1));
          const ok = (r: { code: number | null; stderr: string }) => assert.equal(r.code, 0, r.stderr);
          ok(await dump(t, [...opts, src], { old: null, out: `l1${tag}` }));
          ok(await dump(t, [...opts, remote, ...ssh()], { old: null, out: `r1${tag}` }));
          same(`r1${tag}`, `l1${tag}`);
          changeBlocks(src, BS, 5, 3, 2);
          ok(await dump(t, [...opts, src], { old: path.join(dir, `l1${tag}.md5`), out: `l2${tag}` }));
          ok(
            await dump(t, [...opts, remote, ...ssh()], {
              old: path.join(dir, `l1${tag}.md5`),
              out: `r2${tag}`,
            }),
          );
          same(`r2${tag}`, `l2${tag}`);
          ok(
            await dump(t, [...opts, remote, ...ssh()], {
              old: `pipe:${path.join(dir, `l1${tag}.md5`)}`,
              out: `p2${tag}`,
            }),
          );
          same(`p2${tag}`, `l2${tag}`);
          if (!flag) {
            const want = referenceDump(fs.readFileSync(src), BS, read(`l1${tag}.md5`));
            assert.ok(read(`r2${tag}`).equals(want.diff), "not the original's diff format");
            assert.ok(read(`r2${tag}.md5`).equals(want.digest), "not the original's digest format");
            assert.equal(read(`r2${tag}`).length, 4 + 3 * (8 + BS));
          }
        }
      });

      it(`(${t.name}) takes the block size from the old digest or BLOCKSIZE; ssh://host:port/path; --old-digest/--new-digest`, async () => {
        const src = path.join(dir, `bs-${t.name}.img`);
        fs.writeFileSync(src, pseudoRandom(8192 * 9 + 5, 3));
        const url = `ssh://root@127.0.0.1:${sshd.port}${src}`;
        let r = await dump(t, [url, ...ssh()], { old: null, out: `b1${t.name}`, env: { BLOCKSIZE: "8192" } });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(read(`b1${t.name}`).equals(referenceDump(fs.readFileSync(src), 8192, null).diff));
        changeBlocks(src, 8192, 2, 1, 4);
        // no BLOCKSIZE now: the old digest's block size wins
        const old = path.join(dir, `b1${t.name}.md5`), newDigest = path.join(dir, `b2${t.name}.flag.md5`);
        const res = await run(t, ["dump", url, ...ssh(), "--old-digest", old, "--new-digest", newDigest], {
          cwd: dir,
          env: { SSH_AUTH_SOCK: "" },
        });
        assert.equal(res.code, 0, res.stderr);
        const want = referenceDump(fs.readFileSync(src), 8192, fs.readFileSync(old));
        assert.ok(res.stdout.equals(want.diff));
        assert.ok(fs.readFileSync(newDigest).equals(want.digest));
        r = await dump(t, ["--block-size", "4096", url, ...ssh()], { old, out: `b3${t.name}` });
        assert.equal(r.code, 2);
        assert.match(
          r.stderr,
          /^blockdiff: --block-size 4096 conflicts with the old digest, whose block size is 8192/,
        );
      });

      it(`(${t.name}) fault: a missing remote file or a truncated old digest fails with one line`, async () => {
        const missing = `root@127.0.0.1:${sshd.port}:${dir}/no-such.img`;
        let r = await dump(t, [missing, ...ssh()], { old: null, out: `m${t.name}` });
        expectFailure({ ...r, signal: null, stdout: Buffer.alloc(0) }, 1, /no-such\.img/);
        const src = path.join(dir, `tr-${t.name}.img`);
        fs.writeFileSync(src, pseudoRandom(BS * 4, 5));
        const bad = path.join(dir, `tr-${t.name}.md5`);
        fs.writeFileSync(
          bad,
          Buffer.concat([referenceDump(fs.readFileSync(src), BS, null).digest, Buffer.from("x")]),
        );
        for (const old of [bad, `pipe:${bad}`]) {
          r = await dump(t, [`root@127.0.0.1:${sshd.port}:${src}`, ...ssh()], { old, out: `tr${t.name}` });
          expectFailure(
            { ...r, signal: null, stdout: Buffer.alloc(0) },
            3,
            /old digest \(fd 5\).*not 4 \+ 16\*N/,
          );
        }
      });
    }
  },
);

describe("dump's snapshot options", () => {
  for (const t of targets()) {
    it(`(${t.name}) usage errors: ssh options with a local SOURCE, snapshot options without --lvm-snapshot or together`, async () => {
      const dir = tempDir();
      try {
        const cases: [string[], RegExp][] = [
          [["-i", "/k", "a.img"], /--identity is for a remote SOURCE/],
          [["--lvm-snapshot"], /--lvm-snapshot needs SOURCE/],
          [["--snapshot-wrapper", "hold --", "h:/dev/vg/lv"], /--snapshot-wrapper needs --lvm-snapshot/],
          [["--mysql-lock", "h:/dev/vg/lv"], /--mysql-lock needs --lvm-snapshot/],
          [["--mysql-lock", "--snapshot-wrapper", "hold", "--lvm-snapshot", "h:/dev/vg/lv"], /choose one of/],
          [["--snapshot-wrapper", "hold 'x y'", "--lvm-snapshot", "h:/dev/vg/lv"], /''' would need a shell/],
          [["--lvm-snapshot=lots", "h:/dev/vg/lv"], /is not an LVM size/],
        ];
        for (const [args, pattern] of cases) {
          const r = await run(t, ["dump", ...args, "--new-digest", path.join(dir, "n.md5")], { cwd: dir });
          expectFailure(r, 2, pattern);
        }
        const r = await run(t, ["backup", path.join(dir, "c"), "h:/dev/vg/lv", "--snapshot-wrapper", "hold"]);
        expectFailure(r, 2, /--snapshot-wrapper needs --lvm-snapshot/);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it(`(${t.name}) snapshot-gate: says held, exits 0 on "created", 1 with one line on "failed" or a vanished run`, async () => {
      const dir = tempDir();
      try {
        for (
          const [answer, code, pattern] of [
            ["created\n", 0, null],
            ["failed\n", 1, /^blockdiff: snapshot-gate: the snapshot was not created$/],
            [null, 1, /^blockdiff: snapshot-gate: the run ended before the snapshot was created$/],
          ] as const
        ) {
          const sock = path.join(dir, "gate");
          fs.rmSync(sock, { force: true });
          const server = net.createServer();
          const heard = new Promise<string>((resolve) =>
            server.on("connection", (c) => {
              let got = "";
              c.on("data", (d) => {
                got += d;
                if (!got.endsWith("\n")) return;
                resolve(got);
                setTimeout(() => answer === null ? c.destroy() : c.end(answer), 300);
              });
            })
          );
          await new Promise<void>((resolve) => server.listen(sock, resolve));
          const gate = run(t, ["snapshot-gate", sock]);
          assert.equal(await heard, "held\n");
          const r = await gate;
          server.close();
          assert.equal(r.code, code, r.stderr);
          if (pattern) expectFailure(r, 1, pattern);
          else assert.equal(r.stderr, "");
        }
        expectFailure(await run(t, ["snapshot-gate", path.join(dir, "none")]), 1, /cannot reach the run/);
        const help = await run(t, ["--help"]);
        assert.doesNotMatch(help.stdout.toString(), /snapshot-gate/);
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});

describe("--snapshot-wrapper around the snapshot's creation", () => {
  let dir = "", tmpdir: string | undefined;
  const gateDirs = () => fs.readdirSync(dir).filter((f) => f.startsWith("blockdiff-gate-"));
  before(() => {
    dir = tempDir();
    tmpdir = process.env.TMPDIR;
    process.env.TMPDIR = dir; // where the gate's socket directory goes
  });
  after(() => {
    if (tmpdir === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = tmpdir;
    fs.rmSync(dir, { recursive: true, force: true });
  });

  /** A wrapper that logs before and after running its command (the gate), then exits with `status`. */
  const wrapper = (name: string, body: string) => {
    const f = path.join(dir, name);
    fs.writeFileSync(f, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return f;
  };
  const logged = (f: string) => fs.existsSync(f) ? fs.readFileSync(f, "utf8") : "";
  const holding = () =>
    wrapper(
      "hold.sh",
      `log=$1; status=$2; shift 2\necho "before $$" >> "$log"\n"$@"; gate=$?\necho "after $gate" >> "$log"\n` +
        `echo "wrapper says bye" >&2\nexit $status`,
    );

  it("runs the wrapper up to its gate, holds it while the snapshot is made, and lets it go after", async () => {
    const log = path.join(dir, "ok.log"), lines: string[] = [];
    const quiesce = wrapperQuiesce({ words: [holding(), log, "0"], log: (l) => lines.push(l) });
    const release = await quiesce();
    assert.match(logged(log), /^before \d+\n$/);
    assert.equal(gateDirs().length, 1);
    await new Promise((r) => setTimeout(r, 500));
    assert.match(logged(log), /^before \d+\n$/, "the wrapper went on before the snapshot was made");
    fs.appendFileSync(log, "snapshot\n");
    await release(true);
    assert.match(logged(log), /^before \d+\nsnapshot\nafter 0\n$/);
    assert.deepEqual(gateDirs(), []);
    assert.ok(
      lines.some((l) => /^--snapshot-wrapper '.*hold\.sh .*': wrapper says bye$/.test(l)),
      lines.join("\n"),
    );
  });

  it("tells the gate when no snapshot was made (it exits 1)", async () => {
    const log = path.join(dir, "no.log");
    const release = await wrapperQuiesce({ words: [holding(), log, "1"], log: () => {} })();
    await release(false);
    assert.match(logged(log), /^before \d+\nafter 1\n$/);
  });

  it("fault: a wrapper that fails after the snapshot fails the run with one line naming it", async () => {
    const log = path.join(dir, "fail.log");
    const release = await wrapperQuiesce({ words: [holding(), log, "3"], log: () => {} })();
    await assert.rejects(
      release(true),
      /^BlockdiffError: --snapshot-wrapper '.*hold\.sh .* 3' exited with status 3 after the snapshot was created: wrapper says bye/,
    );
  });

  it("fault: a wrapper that exits before its gate, or cannot run, fails with its last stderr line", async () => {
    const early = wrapper("early.sh", `echo "first" >&2\necho "cannot lock: access denied" >&2\nexit 7`);
    await assert.rejects(
      wrapperQuiesce({ words: [early, "--x"], log: () => {} })(),
      /--snapshot-wrapper '.*early\.sh --x' exited with status 7 before its snapshot-gate was reached: cannot lock: access denied$/,
    );
    await assert.rejects(
      wrapperQuiesce({ words: [path.join(dir, "missing")], log: () => {} })(),
      /--snapshot-wrapper '.*missing': cannot run .*missing/,
    );
    assert.deepEqual(gateDirs(), []);
  });

  /** A run (from source) that holds a wrapper and waits; its stdout says "held" once the gate is reached. */
  function holdingRun(words: string[]) {
    const main = path.join(dir, "holder.ts");
    fs.writeFileSync(
      main,
      `import { installSignalHandlers } from ${JSON.stringify(path.join(ROOT, "src/cleanup.ts"))};\n` +
        `import { wrapperQuiesce } from ${
          JSON.stringify(path.join(ROOT, "src/snapshot/wrapper_quiesce.ts"))
        };\n` +
        `installSignalHandlers();\n` +
        `await wrapperQuiesce({ words: ${JSON.stringify(words)}, log: () => {} })();\n` +
        `console.log("held");\nsetInterval(() => {}, 1000);\n`,
    );
    const child = spawn(process.execPath, ["run", "-A", main], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => out += d);
    const exited = new Promise((resolve) => child.on("close", resolve));
    return { child, held: () => out.includes("held"), exited };
  }
  const alive = (pid: number) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch {
      return false;
    }
  };

  it("fault: an interrupted run kills the wrapper and its gate; a killed one's gate exits 1 on its own", async () => {
    // as hold.sh, with the gate's stderr kept: how it ended (a signal, or the socket closing)
    const script = wrapper(
      "hold-signal.sh",
      `log=$1; shift\necho "before $$" >> "$log"\n"$@" 2>> "$log.gate"; echo "after $?" >> "$log"`,
    );
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const log = path.join(dir, `${signal}.log`);
      const h = holdingRun([script, log]);
      await waitUntil(h.held, "the gate held");
      const pid = Number(/^before (\d+)/.exec(logged(log))![1]);
      h.child.kill(signal);
      await h.exited;
      if (signal === "SIGTERM") {
        await waitUntil(() => !alive(-pid), "the wrapper's process group gone", 10000, 100);
        assert.match(logged(log), /^before \d+\n$/, "the wrapper ran on although it was killed");
        assert.match(logged(`${log}.gate`), /^blockdiff: interrupted by SIGTERM/, "the gate was not killed");
      } else {
        await waitUntil(() => /after 1\n$/.test(logged(log)), "the gate exiting 1", 10000, 100);
        assert.match(logged(`${log}.gate`), /the run ended before the snapshot was created/);
        await waitUntil(() => !alive(pid), "the wrapper exiting", 10000, 100);
      }
    }
  });
});
