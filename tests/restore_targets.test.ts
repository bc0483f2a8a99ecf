/**
 * What restore writes to, and what it never touches (README "What blockdiff promises"): `-` and FIFOs get the
 * image in order, only a regular file is replaced (with --force), links, the chain's own files and block
 * devices the system uses are refused; signals and killed runs leave no temporary file behind for long.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import {
  dirSnapshot,
  expectFailure,
  it,
  listDir,
  pseudoRandom,
  run,
  type RunResult,
  start,
  targets,
  tempDir,
  waitUntil,
} from "./helpers.ts";

const BS = 4096;

/** A loop device over `file` (root only), detached by the returned function; null where losetup fails. */
function loopDevice(file: string, partitions = false): { dev: string; detach(): void } | null {
  const r = spawnSync("losetup", ["--find", "--show", ...(partitions ? ["--partscan"] : []), file], {
    encoding: "utf8",
  });
  if (r.status !== 0) return null;
  const dev = r.stdout.trim();
  return { dev, detach: () => spawnSync("losetup", ["-d", dev]) };
}

/** An MBR with one Linux partition (type 0x83) of `sectors` 512-byte sectors from sector `start`. */
function writePartitionTable(file: string, p: { start: number; sectors: number }): void {
  const mbr = Buffer.alloc(512);
  mbr[446 + 4] = 0x83;
  mbr.writeUInt32LE(p.start, 446 + 8);
  mbr.writeUInt32LE(p.sectors, 446 + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, mbr, 0, 512, 0);
  fs.closeSync(fd);
}

for (const t of targets()) {
  describe(`restore targets (${t.name})`, () => {
    let dir = "";
    let image: Buffer;
    before(async () => {
      dir = tempDir();
      image = pseudoRandom(BS * 300 + 123, 31);
      fs.writeFileSync(path.join(dir, "src.img"), image);
      const r = await run(t, ["backup", "c", "src.img", "--block-size", String(BS)], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
    });
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const restore = (...args: string[]) => run(t, ["restore", "c", ...args], { cwd: dir });

    it("security: - and /dev/stdout stream the image to standard output; /dev/stdout stays what it is", async () => {
      for (const target of ["-", "/dev/stdout"]) {
        const r = await restore(target);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(r.stdout.equals(image), `${target}: the image on stdout differs`);
        assert.match(r.stderr, /restored generation 1 of c to standard output/);
      }
      assert.ok(fs.lstatSync("/dev/stdout").isSymbolicLink(), "/dev/stdout was replaced");
      expectFailure(await restore("-", "--json"), 2, /--json cannot go with TARGET -/);
    });

    it("security: a FIFO and a character device are written in order, never replaced", async () => {
      const fifo = path.join(dir, "out.fifo");
      execFileSync("mkfifo", [fifo]);
      const reader = spawn("cat", [fifo], { stdio: ["ignore", "pipe", "ignore"] });
      const chunks: Buffer[] = [];
      reader.stdout.on("data", (d) => chunks.push(d));
      const read = new Promise((r) => reader.on("close", r));
      const r = await restore(fifo);
      await read;
      assert.equal(r.code, 0, r.stderr);
      assert.ok(Buffer.concat(chunks).equals(image), "the FIFO's reader got something else");
      assert.ok(fs.lstatSync(fifo).isFIFO(), "the FIFO was replaced");
      const n = await restore("/dev/null");
      assert.equal(n.code, 0, n.stderr);
      assert.ok(fs.statSync("/dev/null").isCharacterDevice(), "/dev/null was replaced");
      // a symbolic link to a FIFO is followed (and stays a link)
      fs.symlinkSync(fifo, path.join(dir, "fifo.link"));
      const reader2 = spawn("sh", ["-c", `cat ${fifo} | wc -c`], { stdio: ["ignore", "pipe", "ignore"] });
      let count = "";
      reader2.stdout.on("data", (d) => count += d);
      const done2 = new Promise((r) => reader2.on("close", r));
      assert.equal((await restore("fifo.link")).code, 0);
      await done2;
      assert.equal(Number(count.trim()), image.length);
      assert.ok(fs.lstatSync(path.join(dir, "fifo.link")).isSymbolicLink());
    });

    it("security: an existing file is replaced only with --force; links and the chain's own files never", async () => {
      const out = path.join(dir, "out.img");
      fs.writeFileSync(out, "precious");
      expectFailure(
        await restore("out.img"),
        2,
        /restore target out\.img exists: give --force to replace it/,
      );
      assert.equal(fs.readFileSync(out, "utf8"), "precious");
      assert.equal((await restore("out.img", "--force")).code, 0);
      assert.ok(fs.readFileSync(out).equals(image));

      fs.writeFileSync(path.join(dir, "kept.img"), "precious");
      fs.symlinkSync("kept.img", path.join(dir, "link.img"));
      fs.symlinkSync("nowhere.img", path.join(dir, "dangling.img"));
      for (const link of ["link.img", "dangling.img"]) {
        expectFailure(await restore(link, "--force"), 2, /is a symbolic link.*a link is never replaced/);
        assert.ok(fs.lstatSync(path.join(dir, link)).isSymbolicLink());
      }
      assert.equal(fs.readFileSync(path.join(dir, "kept.img"), "utf8"), "precious");
      assert.ok(!fs.existsSync(path.join(dir, "nowhere.img")));

      const snap = dirSnapshot(dir);
      fs.linkSync(path.join(dir, "c.1"), path.join(dir, "other-name.img"));
      for (
        const own of ["c.1", "c.1.md5", "c.1.json", "c.ver", "c.lock", "c.2", "c.7.md5", "other-name.img"]
      ) {
        expectFailure(await restore(own, "--force"), 2, /is a file of the chain c itself/);
      }
      fs.rmSync(path.join(dir, "other-name.img"));
      assert.deepEqual(dirSnapshot(dir), snap, "a refused restore changed the chain");
      assert.equal((await run(t, ["verify", "c"], { cwd: dir })).code, 0);
    });

    it("a block device gets every block written, zero blocks too (no holes there)", async (ctx) => {
      const zeros = Buffer.alloc(64 * BS);
      pseudoRandom(BS, 5).copy(zeros, 10 * BS);
      fs.writeFileSync(path.join(dir, "zeros.img"), zeros);
      const b = await run(t, ["backup", "z", "zeros.img", "--block-size", String(BS)], { cwd: dir });
      assert.equal(b.code, 0, b.stderr);
      const backing = path.join(dir, "ff.img");
      fs.writeFileSync(backing, Buffer.alloc(1 << 20, 0xff));
      const dev = loopDevice(backing);
      if (!dev) return ctx.skip("no loop devices (not root?)");
      try {
        const r = await run(t, ["restore", "z", dev.dev], { cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.ok(fs.readFileSync(backing).subarray(0, zeros.length).equals(zeros));
      } finally {
        dev.detach();
      }
    });

    it("security: a block device that is mounted, holds a mounted partition or is active swap is refused", async (ctx) => {
      const backing = path.join(dir, "disk.img");
      fs.writeFileSync(backing, Buffer.alloc(8 << 20));
      const plain = loopDevice(backing);
      if (!plain) return ctx.skip("no loop devices (not root?)");
      const mnt = path.join(dir, "mnt");
      fs.mkdirSync(mnt);
      try {
        // unused: written in place
        const r = await restore(plain.dev);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(fs.readFileSync(backing).subarray(0, image.length).equals(image));
        // refused ones: the image must not show up on them (a mounted filesystem writes to its device itself)
        const untouched = (what: string) =>
          assert.ok(!fs.readFileSync(backing).subarray(0, 65536).equals(image.subarray(0, 65536)), what);
        execFileSync("dd", ["if=/dev/zero", `of=${plain.dev}`, "bs=1M", "count=8", "status=none"]);
        execFileSync("mkfs.ext4", ["-q", "-F", plain.dev]);
        execFileSync("mount", [plain.dev, mnt]);
        expectFailure(
          await restore(plain.dev),
          1,
          new RegExp(`${plain.dev} is in use: it is mounted on ${mnt}`),
        );
        execFileSync("umount", [mnt]);
        untouched("a mounted device was written");
        execFileSync("mkswap", ["-q", plain.dev]);
        if (spawnSync("swapon", [plain.dev]).status === 0) {
          try {
            expectFailure(await restore(plain.dev), 1, /is in use: it is active swap/);
          } finally {
            spawnSync("swapoff", [plain.dev]);
          }
          untouched("an active swap device was written");
        }
      } finally {
        spawnSync("umount", [mnt]);
        plain.detach();
      }
      // a whole disk whose partition is mounted
      writePartitionTable(backing, { start: 2048, sectors: (8 << 11) - 2048 });
      const disk = loopDevice(backing, true);
      if (!disk) return;
      try {
        // no udev here: the kernel's partition is added if it is not yet, and given a device node of our own
        const part = `${path.basename(disk.dev)}p1`,
          sys = `/sys/block/${path.basename(disk.dev)}/${part}/dev`;
        spawnSync("partx", ["-a", disk.dev]);
        await waitUntil(() => fs.existsSync(sys), "the kernel to see the partition", 5000, 100);
        const [major, minor] = fs.readFileSync(sys, "utf8").trim().split(":");
        const node = path.join(dir, part);
        execFileSync("mknod", [node, "b", major, minor]);
        execFileSync("mkfs.ext4", ["-q", "-F", node]);
        execFileSync("mount", [node, mnt]);
        const snap = fs.readFileSync(backing);
        expectFailure(
          await restore(disk.dev),
          1,
          new RegExp(`is in use: its partition ${part} is mounted on ${mnt}`),
        );
        execFileSync("umount", [mnt]);
        assert.ok(
          fs.readFileSync(backing).subarray(0, 446).equals(snap.subarray(0, 446)),
          "the disk was written",
        );
      } finally {
        spawnSync("umount", [mnt]);
        disk.detach();
      }
    });

    /**
     * A restore of the 48 MiB chain `big` into `target`, stopped (SIGSTOP) as soon as its temporary file
     * appears, so that what the test does next happens mid-restore.
     */
    async function stoppedRestore(target: string) {
      const p = start(t, ["restore", "big", target], { cwd: dir });
      await waitUntil(
        () => listDir(dir).some((f) => f.startsWith(`${target}.tmp-`)),
        "the temporary file",
        30000,
        1,
      );
      process.kill(p.child.pid!, "SIGSTOP");
      return { ...p, temp: listDir(dir).find((f) => f.startsWith(`${target}.tmp-`))! };
    }

    it("fault: SIGHUP and SIGTERM stop a restore with one line and remove its temporary file", async () => {
      fs.writeFileSync(path.join(dir, "big.img"), pseudoRandom(48 << 20, 32));
      const b = await run(t, ["backup", "big", "big.img", "--block-size", "65536"], { cwd: dir });
      assert.equal(b.code, 0, b.stderr);
      for (const [signal, code] of [["SIGHUP", 129], ["SIGTERM", 143]] as const) {
        const p = await stoppedRestore(`sig-${signal}.img`);
        process.kill(p.child.pid!, signal);
        process.kill(p.child.pid!, "SIGCONT");
        expectFailure(await p.done, code, new RegExp(`^blockdiff: interrupted by ${signal}, cleaning up$`));
        assert.deepEqual(listDir(dir).filter((f) => f.startsWith(`sig-${signal}.img`)), []);
      }
    });

    it("fault: a killed restore's temporary file is removed by the next restore to that target; a live one's is not", async () => {
      const big = fs.readFileSync(path.join(dir, "big.img"));
      // a second restore to the same target while the first is alive (stopped): the first's file stays
      const p = await stoppedRestore("k.img");
      const second = await run(t, ["restore", "big", "k.img"], { cwd: dir });
      assert.equal(second.code, 0, second.stderr);
      assert.ok(fs.existsSync(path.join(dir, p.temp)), "a live restore's temporary file was removed");
      process.kill(p.child.pid!, "SIGCONT");
      // the first then finds k.img there: it does not replace what appeared meanwhile
      expectFailure(await p.done, 3, /k\.img appeared during this run/);
      assert.ok(fs.readFileSync(path.join(dir, "k.img")).equals(big));
      assert.deepEqual(listDir(dir).filter((f) => f.startsWith("k.img")), ["k.img"]);

      // SIGKILL leaves the temporary file; the next restore to that target removes it
      const q = await stoppedRestore("k2.img");
      process.kill(q.child.pid!, "SIGKILL");
      const killed: RunResult = await q.done;
      assert.equal(killed.signal, "SIGKILL");
      assert.ok(fs.existsSync(path.join(dir, q.temp)));
      const next = await run(t, ["restore", "big", "k2.img"], { cwd: dir });
      assert.equal(next.code, 0, next.stderr);
      assert.deepEqual(listDir(dir).filter((f) => f.startsWith("k2.img")), ["k2.img"]);
      assert.ok(fs.readFileSync(path.join(dir, "k2.img")).equals(big));
    });
  });
}
