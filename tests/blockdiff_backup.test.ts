/**
 * `blockdiff_backup NAME CMD ARGS...` (the binary invoked through a link of that name): CMD runs with the
 * chain's descriptors as under the original driver, with blockdiff's commit rules; chains it starts continue
 * with `blockdiff backup` and the other way round; what CMD wrote is checked before it is published.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import * as zlib from "node:zlib";
import { after, before, describe } from "node:test";
import {
  BINARY,
  changeBlocks,
  dirSnapshot,
  expectFailure,
  it,
  listDir,
  pseudoRandom,
  referenceDump,
  run,
  type RunResult,
  start,
  tempDir,
  waitUntil,
} from "./helpers.ts";
import { type Sshd, sshdAvailable, startSshd } from "./sshd.ts";

const BS = 4096;
const haveBinary = fs.existsSync(BINARY);

describe("blockdiff_backup (the original driver's calling form)", {
  skip: !haveBinary && !process.env.CI && "needs the built binary (deno task build)",
}, () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const bin = path.join(dir, "bin");
  fs.mkdirSync(bin);
  for (const name of ["blockdiff_backup", "blockdiff_dump", "blockdiff"]) {
    fs.symlinkSync(BINARY, path.join(bin, name));
  }
  const env = { PATH: `${bin}:${process.env.PATH}`, BLOCKSIZE: String(BS) };
  const driver = { name: "binary", cmd: [path.join(bin, "blockdiff_backup")] };
  const blockdiff = { name: "binary", cmd: [path.join(bin, "blockdiff")] };
  let chains = 0;

  /** A new chain directory with a source image of `size` bytes. */
  function setup(size: number, seed: number) {
    const d = path.join(dir, `c${++chains}`);
    fs.mkdirSync(d);
    const src = path.join(d, "src.img");
    fs.writeFileSync(src, pseudoRandom(size, seed));
    return { d, src, name: path.join(d, "db") };
  }

  /** A shell script CMD in bin/. */
  function script(name: string, body: string): void {
    fs.writeFileSync(path.join(bin, name), `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  }

  const backup = (args: string[], more: Record<string, string> = {}, cwd = dir) =>
    run(driver, args, { cwd, env: { ...env, ...more } });

  function ok(r: RunResult): void {
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /blockdiff: backup completed successfully: /);
  }

  function manifest(name: string, gen: number) {
    return JSON.parse(fs.readFileSync(`${name}.${gen}.json`, "utf8"));
  }

  /** No temporary or partial files, and NAME.ver as given. */
  function assertClean(d: string, ver: number) {
    assert.deepEqual(listDir(d).filter((f) => /\.tmp-\d+$|\.journal$/.test(f)), []);
    assert.equal(fs.readFileSync(path.join(d, "db.ver"), "utf8"), `${ver}\n`);
  }

  async function restored(name: string, gen?: number): Promise<Buffer> {
    const out = path.join(dir, `restored-${path.basename(path.dirname(name))}-${gen ?? "last"}`);
    const r = await run(blockdiff, ["restore", name, out, ...(gen ? ["--generation", String(gen)] : [])], {
      cwd: dir,
    });
    assert.equal(r.code, 0, r.stderr);
    const data = fs.readFileSync(out);
    fs.rmSync(out);
    return data;
  }

  it("writes the original's files with blockdiff_dump, -z and --lzop; continues with blockdiff backup", async () => {
    const { src, name } = setup(BS * 40 + 1000, 1); // a short last block
    const v1 = fs.readFileSync(src);
    ok(await backup([name, "blockdiff_dump", src]));
    const ref1 = referenceDump(v1, BS, null);
    assert.ok(fs.readFileSync(`${name}.1`).equals(ref1.diff), "generation 1 is the original's full dump");
    assert.ok(fs.readFileSync(`${name}.1.md5`).equals(ref1.digest));
    assert.equal(fs.statSync(`${name}.1`).mode & 0o777, 0o600);
    const m1 = manifest(name, 1);
    assert.equal(m1.blocksize, BS);
    assert.equal(m1.blocks, 41);
    assert.equal(m1.sourceSize, v1.length);
    assert.equal(m1.blocksChanged, 41);
    assert.equal(m1.compression, "none");
    assert.match(m1.source, /^blockdiff_backup: blockdiff_dump /);

    changeBlocks(src, BS, 3, 2, 2); // the last block stays: its length comes from generation 1
    const v2 = fs.readFileSync(src);
    ok(await backup([name, "blockdiff_dump", "-z", src]));
    const ref2 = referenceDump(v2, BS, ref1.digest);
    assert.ok(
      zlib.gunzipSync(fs.readFileSync(`${name}.2.gz`)).equals(ref2.diff),
      "generation 2: gzip'd diff",
    );
    assert.ok(fs.readFileSync(`${name}.2.md5`).equals(ref2.digest));
    const m2 = manifest(name, 2);
    assert.equal(m2.blocksChanged, 2);
    assert.equal(m2.sourceSize, v2.length);
    assert.equal(m2.compression, "gzip");

    changeBlocks(src, BS, 40, 1, 3); // the last block changes (and stays short)
    fs.truncateSync(src, BS * 40 + 1000);
    const v3 = fs.readFileSync(src);
    ok(await backup([name, "blockdiff_dump", "--lzop", src]));
    const lz = fs.readFileSync(`${name}.3.lzop`);
    assert.equal(lz.subarray(1, 4).toString(), "LZO", "an lzop file");
    assert.equal(manifest(name, 3).sourceSize, v3.length);

    changeBlocks(src, BS, 10, 1, 4);
    const v4 = fs.readFileSync(src);
    const r4 = await run(blockdiff, ["backup", name, src], { cwd: dir });
    assert.equal(r4.code, 0, r4.stderr);
    assert.equal(manifest(name, 4).compression, "lzop", "blockdiff backup keeps the chain's compression");

    changeBlocks(src, BS, 11, 1, 5);
    const v5 = fs.readFileSync(src);
    ok(await backup([name, "blockdiff_dump", src]));
    assertClean(path.dirname(name), 5);

    const verify = await run(blockdiff, ["verify", name], { cwd: dir });
    assert.equal(verify.code, 0, verify.stdout.toString() + verify.stderr);
    assert.ok((await restored(name)).equals(v5));
    assert.ok((await restored(name, 2)).equals(v2));
    assert.ok((await restored(name, 3)).equals(v3));
    assert.ok((await restored(name, 4)).equals(v4));
    const status = await run(blockdiff, ["status", name], { cwd: dir });
    assert.equal(status.code, 0, status.stdout.toString() + status.stderr);
    assert.match(status.stdout.toString(), /last backup succeeded/);
  });

  it("continues a chain of the original tools, finding the last block's length in its diffs", async () => {
    for (const compressed of [false, true]) {
      const { src, name, d } = setup(BS * 20 + 777, 10);
      const v1 = fs.readFileSync(src);
      const ref1 = referenceDump(v1, BS, null);
      changeBlocks(src, BS, 5, 1, 11);
      const v2 = fs.readFileSync(src);
      const ref2 = referenceDump(v2, BS, ref1.digest);
      // the original's files only: no manifests; the last block is in generation 1's diff alone
      fs.writeFileSync(
        `${name}.1${compressed ? ".gz" : ""}`,
        compressed ? zlib.gzipSync(ref1.diff) : ref1.diff,
      );
      fs.writeFileSync(`${name}.1.md5`, ref1.digest);
      fs.writeFileSync(`${name}.2`, ref2.diff);
      fs.writeFileSync(`${name}.2.md5`, ref2.digest);
      fs.writeFileSync(`${name}.ver`, "2\n");

      changeBlocks(src, BS, 7, 1, 12);
      const v3 = fs.readFileSync(src);
      ok(await backup(["db", "blockdiff_dump", "src.img"], {}, d));
      const ref3 = referenceDump(v3, BS, ref2.digest);
      assert.ok(fs.readFileSync(`${name}.3`).equals(ref3.diff));
      assert.equal(manifest(name, 3).sourceSize, v3.length, `compressed generation 1: ${compressed}`);
      const verify = await run(blockdiff, ["verify", name], { cwd: dir });
      assert.equal(verify.code, 0, verify.stdout.toString() + verify.stderr);
      assert.ok((await restored(name)).equals(v3));
    }
  });

  it("a command that fails or is killed publishes nothing and gives its exit status", async () => {
    const { src, name, d } = setup(BS * 8, 20);
    ok(await backup([name, "blockdiff_dump", src]));
    changeBlocks(src, BS, 2, 1, 21);
    const before = dirSnapshot(d);
    // complete, valid outputs, then a failure: the exit status alone says the run failed
    script("fails_after", `blockdiff_dump "$@"; exit 3`);
    const failed = await backup([name, "fails_after", src]);
    expectFailure(failed, 3, /fails_after failed \(exit 3\): nothing of this run was published/);
    assert.deepEqual(dirSnapshot(d), before);
    assertClean(d, 1);
    const status = await run(blockdiff, ["status", name], { cwd: dir });
    assert.equal(status.code, 5, status.stdout.toString());
    assert.match(status.stdout.toString(), /last backup FAILED .*exit 3/);

    script("killed_midway", `head -c 10000 "$1"; echo partial >&6; kill -KILL $$`);
    const killed = await backup([name, "killed_midway", src]);
    expectFailure(killed, 137, /killed_midway was killed by SIGKILL: nothing of this run was published/);
    assert.deepEqual(dirSnapshot(d), before);
    assertClean(d, 1);

    const missing = await backup([name, "no_such_dump_command", src]);
    expectFailure(missing, 127, /no_such_dump_command: command not found/);
    assert.deepEqual(dirSnapshot(d), before);

    ok(await backup([name, "blockdiff_dump", src]));
    assertClean(d, 2);
  });

  it("refuses what a command wrote that the chain could not restore (exit 1, nothing published)", async () => {
    const { src, name, d } = setup(BS * 8 + 100, 30);
    ok(await backup([name, "blockdiff_dump", src]));
    const v1 = fs.readFileSync(src);
    changeBlocks(src, BS, 2, 1, 31);
    changeBlocks(src, BS, 8, 1, 32); // the short last block too: the diff ends with it
    fs.truncateSync(src, BS * 8 + 100);
    const ref = referenceDump(fs.readFileSync(src), BS, referenceDump(v1, BS, null).digest);
    const good = { diff: path.join(d, "good.diff"), digest: path.join(d, "good.md5") };
    fs.writeFileSync(good.diff, ref.diff);
    fs.writeFileSync(good.digest, ref.digest);
    const bad = (f: string, data: Buffer) => {
      fs.writeFileSync(path.join(d, f), data);
      return path.join(d, f);
    };
    const noRecord = referenceDump(v1, BS, null).diff.subarray(0, 4); // header only: block 2 missing
    const otherBs = Buffer.from(ref.digest);
    otherBs.writeUInt32LE(BS * 2, 0);
    const flipped = Buffer.from(ref.diff);
    flipped[4 + 8 + 100] ^= 1;
    const cases: [string, string, string, RegExp][] = [
      ["digest not whole entries", good.diff, bad("short.md5", ref.digest.subarray(0, -3)), /not 4 \+ 16\*N/],
      ["digest in another block size", good.diff, bad("bs.md5", otherBs), /block size 8192, but the chain's/],
      ["a changed block missing", bad("missing.diff", noRecord), good.digest, /block 2 changed .* missing/],
      [
        "a block not matching the digest",
        bad("flipped.diff", flipped),
        good.digest,
        /does not match its digest/,
      ],
      // a short last block ends at the end of the stream: what follows it makes it longer
      [
        "data after the last block",
        bad("trailing.diff", Buffer.concat([ref.diff, Buffer.from("x")])),
        good.digest,
        /block 8 does not match its digest/,
      ],
      ["not gzip", good.diff, good.digest, /corrupt compressed data|incorrect header/],
    ];
    const before = dirSnapshot(d);
    for (const [what, diff, digest, pattern] of cases) {
      const z = what === "not gzip" ? ["-z"] : [];
      script("canned_dump", `cat "$1"; cat "$2" >&6`);
      const r = await backup([name, "canned_dump", diff, digest, ...z]);
      expectFailure(r, 1, pattern);
      assert.match(r.stderr, /nothing of this run was published/, what);
      assert.deepEqual(dirSnapshot(d), before, what);
      assertClean(d, 1);
    }
    // the same command with the good files is taken
    ok(await backup([name, "canned_dump", good.diff, good.digest]));
    assertClean(d, 2);
  });

  it("gives CMD the previous digest on fd 5 only when there is one; VERBOSE prints the original's line", async () => {
    const { src, name, d } = setup(BS * 4, 40);
    script("show_fds", `[ -e /dev/fd/5 ] && echo has5 >> "$2" || echo no5 >> "$2"; exec blockdiff_dump "$1"`);
    const log = path.join(d, "fds.log");
    const r1 = await backup([name, "show_fds", src, log], { VERBOSE: "1" });
    ok(r1);
    assert.match(
      r1.stderr,
      new RegExp(`^running: "show_fds" "${src}" "${log}" 6> "${name}.1.md5" > "${name}.1"$`, "m"),
    );
    const r2 = await backup([name, "show_fds", src, log], { VERBOSE: "1" });
    ok(r2);
    assert.match(
      r2.stderr,
      new RegExp(`^running: .* 5< "${name}.1.md5" 6> "${name}.2.md5" > "${name}.2"$`, "m"),
    );
    assert.equal(fs.readFileSync(log, "utf8"), "no5\nhas5\n");
  });

  it("runs a CMD script without a #! line with sh, as sh would", async () => {
    const { src, name, d } = setup(BS * 4, 45);
    fs.writeFileSync(path.join(bin, "plain_dump"), `exec blockdiff_dump "$1"\n`, { mode: 0o755 });
    ok(await backup([name, "plain_dump", src]));
    assert.ok(fs.readFileSync(`${name}.1`).equals(referenceDump(fs.readFileSync(src), BS, null).diff));
    assertClean(d, 1);
  });

  it("holds the chain's lock: a second run fails at once (exit 4) without running its command", async () => {
    const { src, name, d } = setup(BS * 4, 50);
    ok(await backup([name, "blockdiff_dump", src]));
    script("slow_dump", `touch "$2"; exec sleep 30`);
    script("touch_marker", `touch "$2"; exec blockdiff_dump "$1"`);
    const marker = path.join(d, "ran");
    const first = start(driver, [name, "slow_dump", src, path.join(d, "first")], { cwd: dir, env });
    await waitUntil(() => fs.existsSync(path.join(d, "first")), "the first run's command");
    const second = await backup([name, "touch_marker", src, marker]);
    expectFailure(second, 4, /in use by another run/);
    assert.ok(!fs.existsSync(marker));
    process.kill(first.child.pid!, "SIGTERM"); // (ChildProcess.kill makes Deno report the signal, not the code)
    const r = await first.done;
    assert.equal(r.code, 143, r.stderr);
    assertClean(d, 1);
  });

  it("SIGTERM stops the command too and leaves no temporary file", async () => {
    const { src, name, d } = setup(BS * 4, 60);
    const trapped = path.join(d, "trapped");
    script(
      "trap_dump",
      `trap 'echo term > "$2"; kill $!; exit 1' TERM; head -c 5000 "$1"; touch "$2.started"; ` +
        `sleep 30 >/dev/null 2>&1 6>&- & wait`,
    );
    const run1 = start(driver, [name, "trap_dump", src, trapped], { cwd: dir, env });
    await waitUntil(() => fs.existsSync(`${trapped}.started`), "the command");
    assert.ok(listDir(d).some((f) => /\.tmp-\d+$/.test(f)), "the run's temporary files");
    process.kill(run1.child.pid!, "SIGTERM");
    const r = await run1.done;
    assert.equal(r.code, 143, r.stderr);
    await waitUntil(() => fs.existsSync(trapped), "the command's TERM trap");
    assert.deepEqual(
      listDir(d).filter((f) => f.startsWith("db.") && !/\.(lock|last-backup\.json)$/.test(f)),
      [],
    );
  });

  describe("with the original remote dump", {
    skip: !sshdAvailable() && !process.env.CI && "needs root and sshd",
  }, () => {
    let sshd: Sshd;
    before(async () => {
      sshd = await startSshd();
      fs.symlinkSync(BINARY, path.join(bin, "ssh_blockdiff_dump"));
    });
    after(() => sshd?.stop());

    it("ssh_blockdiff_dump -z over a non-default port writes the original's files; they restore", async () => {
      const { src, name } = setup(BS * 30 + 5, 70);
      const sshArgs =
        `-p ${sshd.port} -i ${sshd.clientKey} -o UserKnownHostsFile=${sshd.knownHosts} root@127.0.0.1`;
      const versions: Buffer[] = [];
      let oldDigest: Buffer | null = null;
      for (let g = 1; g <= 2; g++) {
        if (g === 2) changeBlocks(src, BS, 7, 3, 71);
        versions.push(fs.readFileSync(src));
        ok(await backup([name, "ssh_blockdiff_dump", "-z", sshArgs, src], { SSH_AUTH_SOCK: "" }));
        const ref = referenceDump(versions[g - 1], BS, oldDigest);
        assert.ok(zlib.gunzipSync(fs.readFileSync(`${name}.${g}.gz`)).equals(ref.diff), `generation ${g}`);
        assert.ok(fs.readFileSync(`${name}.${g}.md5`).equals(ref.digest));
        oldDigest = ref.digest;
      }
      assert.equal(manifest(name, 2).blocksChanged, 3);
      assert.ok((await restored(name, 1)).equals(versions[0]));
      assert.ok((await restored(name)).equals(versions[1]));
    });
  });

  it("usage: NAME and CMD are needed (exit 2); --help", async () => {
    expectFailure(await backup(["only-a-name"]), 2, /usage: blockdiff_backup NAME CMD/);
    const help = await backup(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout.toString(), /^usage: blockdiff_backup NAME CMD \[ARGS\.\.\.\]/);
  });
});
