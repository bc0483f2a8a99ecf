/** Bad input and interrupted runs: one clear line, the right exit code, and nothing of the chain lost. */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import {
  changeBlocks,
  dirSnapshot,
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

const BS = 4096;

async function backup(t: Target, dir: string, name: string, extra: string[] = [], source = "src.img") {
  return await run(t, ["backup", name, source, "--block-size", String(BS), ...extra], { cwd: dir });
}

/** Sets up chain `name`: a full generation, then a gzip-compressed one that changed 3 of 17 blocks. */
async function twoGenerations(t: Target, dir: string, name: string): Promise<void> {
  fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 16 + 10, 1));
  assert.equal((await backup(t, dir, name)).code, 0);
  changeBlocks(path.join(dir, "src.img"), BS, 5, 3, 2);
  assert.equal((await backup(t, dir, name, ["--compress", "gzip"])).code, 0);
}

for (const t of targets()) {
  describe(`failures (${t.name})`, () => {
    let dir = "";
    before(() => dir = tempDir());
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("fault: a conflicting --block-size is refused and changes nothing", async () => {
      await twoGenerations(t, dir, "bs");
      const snap = dirSnapshot(dir);
      expectFailure(
        await run(t, ["backup", "bs", "src.img", "--block-size", "8192"], { cwd: dir }),
        2,
        /--block-size 8192 conflicts with chain bs, whose block size is 4096/,
      );
      assert.deepEqual(dirSnapshot(dir), snap);
    });

    it("fault: unreadable source, missing backup directory, bad options", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS, 3));
      expectFailure(
        await backup(t, dir, "x", [], "nope.img"),
        1,
        /cannot open source nope\.img: no such file/,
      );
      expectFailure(await backup(t, dir, "x", [], "."), 1, /it is a directory/);
      expectFailure(await backup(t, dir, "missing/x"), 1, /backup directory missing: no such file/);
      expectFailure(await backup(t, dir, "x", ["--compress", "rar"]), 2, /unknown compression 'rar'/);
      expectFailure(await backup(t, dir, "x", ["--frobnicate"]), 2, /unknown option --frobnicate/);
      expectFailure(await backup(t, dir, "x", ["--mysql-lock"]), 2, /--mysql-lock needs --lvm-snapshot/);
      expectFailure(await backup(t, dir, "x", ["--mysql-user", "bk"]), 2, /--mysql-user needs --mysql-lock/);
      expectFailure(
        await backup(t, dir, "x", ["--lvm-snapshot"]),
        1,
        /src\.img is not an LVM logical volume/,
      );
      expectFailure(await run(t, ["restore", "x"], { cwd: dir }), 2, /usage: blockdiff restore/);
      expectFailure(await run(t, ["restore", "nochain", "o.img"], { cwd: dir }), 1, /no backup chain/);
      assert.deepEqual(
        listDir(dir).filter((f) => f.startsWith("x.")),
        ["x.lock"],
        "a failed first run left files",
      );
    });

    it("fault: a restore into a missing directory fails clearly and leaves nothing", async () => {
      await twoGenerations(t, dir, "nodir");
      expectFailure(
        await run(t, ["restore", "nodir", "missing-dir/out.img"], { cwd: dir }),
        1,
        /creating missing-dir\/out\.img\.tmp-\d+: no such file or directory/,
      );
      expectFailure(
        await run(t, ["restore", "nodir", "."], { cwd: dir }),
        1,
        /restore target \. is a directory/,
      );
      expectFailure(
        await run(t, ["restore", "nodir", "o.img", "-g", "3"], { cwd: dir }),
        2,
        /generation 3 does not exist/,
      );
    });

    it("fault: a garbage .ver stops backup and restore without touching anything", async () => {
      await twoGenerations(t, dir, "garb");
      fs.writeFileSync(path.join(dir, "garb.ver"), "two\n");
      const snap = dirSnapshot(dir);
      expectFailure(await backup(t, dir, "garb"), 3, /garb\.ver: expected a generation number/);
      expectFailure(
        await run(t, ["restore", "garb", "g.img"], { cwd: dir }),
        3,
        /expected a generation number/,
      );
      assert.deepEqual(dirSnapshot(dir), snap);
    });

    it("fault: a digest file of the wrong length is detected by backup, restore and verify", async () => {
      await twoGenerations(t, dir, "dig");
      fs.truncateSync(path.join(dir, "dig.2.md5"), fs.statSync(path.join(dir, "dig.2.md5")).size - 3);
      const snap = dirSnapshot(dir);
      expectFailure(await backup(t, dir, "dig"), 3, /dig\.2\.md5: length \d+ is not 4 \+ 16\*N/);
      expectFailure(await run(t, ["restore", "dig", "d.img"], { cwd: dir }), 3, /not 4 \+ 16\*N/);
      const v = await run(t, ["verify", "dig"], { cwd: dir });
      assert.equal(v.code, 3);
      assert.match(v.stdout.toString(), /generation 1: OK[^]*generation 2: BAD .*not 4 \+ 16\*N/);
      assert.deepEqual(dirSnapshot(dir), snap);
    });

    it("fault: a truncated or corrupt diff: verify reports it, restore produces no image", async () => {
      await twoGenerations(t, dir, "cut");
      fs.truncateSync(path.join(dir, "cut.1"), fs.statSync(path.join(dir, "cut.1")).size - 100);
      expectFailure(
        await run(t, ["restore", "cut", "c.img"], { cwd: dir }),
        3,
        /block \d+ does not match|short/,
      );
      assert.ok(!listDir(dir).some((f) => f.startsWith("c.img")), "restore left an image or temp file");
      const v = await run(t, ["verify", "cut"], { cwd: dir });
      assert.equal(v.code, 3);
      assert.match(v.stdout.toString(), /generation 1: BAD/);

      await twoGenerations(t, dir, "gz");
      const p = path.join(dir, "gz.2.gz");
      fs.truncateSync(p, fs.statSync(p).size - 10);
      expectFailure(
        await run(t, ["restore", "gz", "g.img"], { cwd: dir }),
        3,
        /gz\.2\.gz: corrupt compressed data/,
      );
      assert.ok(!fs.existsSync(path.join(dir, "g.img")));
    });

    it("fault: a bad block several chunks in: restore leaves no image (in place: nothing from it on); verify names it", async () => {
      // 3000 blocks of 4 KiB: six 2 MiB chunks; block 1700 is in the fourth, with earlier ones being written
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 3000, 12));
      assert.equal((await backup(t, dir, "late")).code, 0);
      const diff = path.join(dir, "late.1");
      const bytes = fs.readFileSync(diff);
      bytes[4 + 1700 * (8 + BS) + 8 + 100] ^= 0x01; // a data byte of block 1700's record
      bytes[4 + 2500 * (8 + BS) + 8 + 100] ^= 0x01; // and one in a later chunk: the first is the one named
      fs.writeFileSync(diff, bytes);
      expectFailure(
        await run(t, ["restore", "late", "late.img"], { cwd: dir }),
        3,
        /block 1700 does not match generation 1's digest: the chain is corrupt; nothing was produced/,
      );
      assert.ok(!listDir(dir).some((f) => f.startsWith("late.img")), "restore left an image or temp file");
      // verify hashes batches of records while it reads the next: it names the bad block, and the first
      // problem in block order even when a later one (a truncated record) is found before it is hashed
      const verify = async () => {
        const v = await run(t, ["verify", "late"], { cwd: dir });
        assert.equal(v.code, 3, v.stderr.toString());
        assert.match(
          v.stdout.toString(),
          /generation 1: BAD .*late\.1: block 1700 does not match its digest/,
        );
      };
      await verify();
      fs.truncateSync(diff, 4 + 1900 * (8 + BS) + 100);
      await verify();
      fs.writeFileSync(diff, bytes);

      // In place on a block device (a loop device over a file): the chunks before the bad block are written,
      // nothing from the bad block on.
      const backing = path.join(dir, "late.dev");
      fs.writeFileSync(backing, Buffer.alloc(BS * 3000, 0xee));
      const loop = spawnSync("losetup", ["--find", "--show", backing], { encoding: "utf8" });
      if (loop.status !== 0) return; // not root: the regular-file case above still ran
      const dev = loop.stdout.trim();
      try {
        expectFailure(
          await run(t, ["restore", "late", dev], { cwd: dir }),
          3,
          /block 1700 does not match generation 1's digest: the chain is corrupt; nothing was written past this block/,
        );
      } finally {
        spawnSync("losetup", ["-d", dev]);
      }
      const device = fs.readFileSync(backing);
      const source = fs.readFileSync(path.join(dir, "src.img"));
      assert.ok(
        device.subarray(0, BS * 1024).equals(source.subarray(0, BS * 1024)),
        "verified chunks not written",
      );
      assert.ok(
        device.subarray(BS * 1700).every((b) => b === 0xee),
        "a block from the bad one on was written",
      );
    });

    for (const victim of ["diff", "digest", "manifest"] as const) {
      it(`fault: verify detects one flipped bit in a ${victim} file; restore refuses`, async () => {
        const name = `flip-${victim}`;
        await twoGenerations(t, dir, name);
        const file = { diff: `${name}.1`, digest: `${name}.2.md5`, manifest: `${name}.2.json` }[victim];
        const p = path.join(dir, file);
        const bytes = fs.readFileSync(p);
        const at = victim === "manifest" ? bytes.indexOf("startedAt") + 16 : Math.floor(bytes.length / 2);
        bytes[at] ^= 0x04;
        fs.writeFileSync(p, bytes);
        const v = await run(t, ["verify", name], { cwd: dir });
        assert.equal(v.code, 3, v.stdout.toString());
        assert.match(v.stdout.toString(), /BAD/);
        const r = await run(t, ["restore", name, `${name}.img`], { cwd: dir });
        assert.equal(r.code, 3, r.stderr);
        assert.ok(!listDir(dir).some((f) => f.startsWith(`${name}.img`)));
      });
    }

    it("fault: a truncated manifest: verify reports it, restore refuses", async () => {
      await twoGenerations(t, dir, "cut-manifest");
      fs.truncateSync(path.join(dir, "cut-manifest.2.json"), 100);
      const v = await run(t, ["verify", "cut-manifest"], { cwd: dir });
      assert.equal(v.code, 3);
      assert.match(v.stdout.toString(), /generation 2: BAD .*not valid JSON/);
      expectFailure(await run(t, ["restore", "cut-manifest", "cm.img"], { cwd: dir }), 3, /corrupt manifest/);
      assert.ok(!fs.existsSync(path.join(dir, "cm.img")));
    });

    it("fault: a full backup directory fails cleanly and the chain stays usable", async (ctx) => {
      const mnt = tempDir("blockdiff-full-");
      const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=256k", "tmpfs", mnt]);
      if (m.status !== 0) return ctx.skip("cannot mount a tmpfs here (not root?)");
      try {
        fs.writeFileSync(path.join(mnt, "src.img"), pseudoRandom(BS * 10, 4));
        assert.equal((await backup(t, mnt, "full")).code, 0);
        const snap = dirSnapshot(mnt);
        fs.writeFileSync(path.join(dir, "big.img"), pseudoRandom(BS * 80, 5));
        const r = await backup(t, mnt, "full", [], path.join(dir, "big.img"));
        expectFailure(r, 1, /no space left on device/);
        assert.deepEqual(dirSnapshot(mnt), snap, "files changed or temporary files left");
        fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 80, 5));
        assert.equal((await backup(t, dir, "big")).code, 0);
        const restore = await run(t, ["restore", "big", path.join(mnt, "r.img")], { cwd: dir });
        expectFailure(restore, 1, /no space left on device/);
        assert.deepEqual(dirSnapshot(mnt), snap);
        assert.equal((await run(t, ["verify", "full"], { cwd: mnt })).code, 0);
      } finally {
        spawnSync("umount", [mnt]);
        fs.rmSync(mnt, { recursive: true, force: true });
      }
    });

    it("fault: a read-only backup directory fails with one line and changes nothing; restore still works", async (ctx) => {
      const mnt = tempDir("blockdiff-ro-");
      if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]).status !== 0) {
        return ctx.skip("cannot mount a tmpfs here (not root?)");
      }
      try {
        fs.writeFileSync(path.join(mnt, "src.img"), pseudoRandom(BS * 10, 4));
        assert.equal((await backup(t, mnt, "ro")).code, 0);
        const before = dirSnapshot(mnt);
        execFileSync("mount", ["-o", "remount,ro", mnt]);
        changeBlocks(path.join(dir, "src.img"), BS, 0, 1, 3);
        expectFailure(await backup(t, mnt, "ro", [], path.join(dir, "src.img")), 1, /read-only file system/i);
        assert.deepEqual(dirSnapshot(mnt), before);
        assert.equal((await run(t, ["verify", "ro"], { cwd: mnt })).code, 0);
        const r = await run(t, ["restore", path.join(mnt, "ro"), path.join(dir, "ro.img")]);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(
          fs.readFileSync(path.join(dir, "ro.img")).equals(fs.readFileSync(path.join(mnt, "src.img"))),
        );
        execFileSync("mount", ["-o", "remount,rw", mnt]);
        assert.equal((await backup(t, mnt, "ro")).code, 0, "the next run succeeds");
      } finally {
        spawnSync("umount", [mnt]);
        fs.rmSync(mnt, { recursive: true, force: true });
      }
    });

    it("fault: a source that grew, then shrank: every generation restores byte-exact", async () => {
      const sizes = [BS * 16 + 10, BS * 24 + 100, BS * 9 + 5, BS * 9 + 5];
      const images: Buffer[] = [];
      for (const [i, size] of sizes.entries()) {
        const img = pseudoRandom(size, 40 + i);
        if (i === 3) img.set(images[2].subarray(0, BS * 5)); // same size, a few blocks differ
        images.push(img);
        fs.writeFileSync(path.join(dir, "src.img"), img);
        const r = await backup(t, dir, "resized");
        assert.equal(r.code, 0, r.stderr);
      }
      assert.equal((await run(t, ["verify", "resized"], { cwd: dir })).code, 0);
      for (const [i, img] of images.entries()) {
        const out = path.join(dir, `resized-${i + 1}.img`);
        const r = await run(t, ["restore", "resized", out, "-g", String(i + 1)], { cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(fs.readFileSync(out).equals(img), `generation ${i + 1}`);
      }
    });

    const cases = [
      ["SIGKILL", 10],
      ["SIGKILL", 50],
      ["SIGKILL", 99],
      ["SIGINT", 50],
      ["SIGTERM", 50],
      ["SIGHUP", 50],
    ] as const;
    const SIGNAL_EXIT = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 } as const;
    for (const [signal, percent] of cases) {
      it(`fault: ${signal} at ${percent}% of a dump leaves .ver and earlier generations intact; the next run succeeds`, async () => {
        const name = `kill-${signal}-${percent}`;
        const v1 = pseudoRandom(BS * 2048, 6);
        fs.writeFileSync(path.join(dir, "src.img"), v1);
        assert.equal((await backup(t, dir, name)).code, 0);
        const before = dirSnapshot(dir);
        const fifo = path.join(dir, `${name}.fifo`);
        execFileSync("mkfifo", [fifo]);
        const child = start(t, ["backup", name, fifo, "--block-size", String(BS)], { cwd: dir });
        const w = fs.openSync(fifo, "w");
        const v2 = pseudoRandom(BS * 2048, 7);
        const fed = Math.floor(2048 * percent / 100); // blocks given to the dump; the rest never comes
        fs.writeSync(w, v2, 0, BS * fed); // returns once the dump has read all of it but a pipe buffer
        const temp = () => listDir(dir).find((f) => f.startsWith(`${name}.2.tmp-`));
        try {
          await waitUntil(() => !!temp(), `the dump to reach ${percent}%`);
          await new Promise((r) => setTimeout(r, 200)); // hashing and writing what it read
        } catch (err) {
          child.child.kill("SIGKILL");
          throw err;
        }
        process.kill(child.child.pid!, signal); // (ChildProcess.kill makes Deno report the signal, not the exit code)
        const r = await child.done;
        fs.closeSync(w);
        if (signal === "SIGKILL") assert.equal(r.signal, "SIGKILL");
        else {
          expectFailure(
            r,
            SIGNAL_EXIT[signal],
            new RegExp(`^blockdiff: interrupted by ${signal}, cleaning up$`),
          );
          assert.ok(!listDir(dir).some((f) => f.includes(".tmp-")), "temporary files left after cleanup");
        }
        const after = dirSnapshot(dir);
        for (const [f, sum] of Object.entries(before)) assert.equal(after[f], sum, `${f} changed`);
        assert.ok(
          !fs.existsSync(path.join(dir, `${name}.2`)) && !fs.existsSync(path.join(dir, `${name}.2.md5`)),
        );
        fs.writeFileSync(path.join(dir, "src.img"), v2);
        const next = await backup(t, dir, name);
        assert.equal(next.code, 0, next.stderr);
        assert.ok(
          !listDir(dir).some((f) => f.includes(".tmp-")),
          "leftover temporary files were not removed",
        );
        assert.equal((await run(t, ["verify", name], { cwd: dir })).code, 0);
        assert.equal((await run(t, ["restore", name, `${name}.img`, "-g", "1"], { cwd: dir })).code, 0);
        assert.ok(fs.readFileSync(path.join(dir, `${name}.img`)).equals(v1));
        fs.rmSync(fifo);
      });
    }

    it("fault: SIGTERM while a FIFO source has no writer yet: the run stops at once (143), nothing left", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 4, 9));
      assert.equal((await backup(t, dir, "nowriter")).code, 0);
      const snap = dirSnapshot(dir);
      const fifo = path.join(dir, "nowriter.fifo");
      execFileSync("mkfifo", [fifo]);
      const p = start(t, ["backup", "nowriter", fifo, "--block-size", String(BS)], { cwd: dir });
      await waitUntil(
        () => fs.readFileSync(path.join(dir, "nowriter.lock"), "utf8") !== "",
        "the run to start",
      );
      await new Promise((r) => setTimeout(r, 300)); // now waiting in open(2) for a writer
      process.kill(p.child.pid!, "SIGTERM");
      const stuck = setTimeout(() => p.child.kill("SIGKILL"), 3000); // not stopped by then: fails below
      const r = await p.done;
      clearTimeout(stuck);
      assert.notEqual(r.signal, "SIGKILL", "SIGTERM did not stop it within 3 s");
      expectFailure(r, 143, /^blockdiff: interrupted by SIGTERM, cleaning up$/);
      fs.rmSync(fifo);
      assert.deepEqual(dirSnapshot(dir), snap);
    });

    it("fault: --lock FILE: a second run fails at once naming the holder; a PID left in the file means nothing", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 4, 8));
      const lockFile = path.join(dir, "run.lock");
      const holder = spawn("flock", [lockFile, "sleep", "60"], { stdio: "ignore", detached: true });
      try {
        await waitUntil(
          () => spawnSync("flock", ["-n", lockFile, "true"]).status === 1,
          "flock to hold run.lock",
        );
        expectFailure(
          await backup(t, dir, "locked", ["--lock", "run.lock"]),
          4,
          /lock file run\.lock is in use by another run/,
        );
        assert.ok(!fs.existsSync(path.join(dir, "locked.ver")));
      } finally {
        process.kill(-holder.pid!, "SIGKILL"); // flock and its sleep, which shares the locked file
        await new Promise((r) => holder.once("close", r));
      }
      // the PID of a live, unrelated process (as after a reboot reused it) does not hold anything
      fs.writeFileSync(lockFile, `${process.pid}\n`);
      assert.equal((await backup(t, dir, "locked", ["--lock", "run.lock"])).code, 0);
      assert.equal(fs.readFileSync(lockFile, "utf8"), "", "the lock file keeps no holder once released");
    });
  });
}
