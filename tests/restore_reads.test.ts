/**
 * What restore reads and holds (docs/architecture.md "A restore"): only the blocks that survive to the
 * generation restored, only the diffs they come from opened (long chains under a low `ulimit -n`), zero
 * blocks of a new file left as holes; verify's progress line.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import * as zlib from "node:zlib";
import { expectFailure, it, pseudoRandom, referenceDump, run, targets, tempDir } from "./helpers.ts";

const BS = 4096;

/** Writes chain `name` of `images` into `dir` as the original tools would (no manifests). */
function writeChain(dir: string, name: string, images: Buffer[], gzip = false): void {
  let prev: Buffer | null = null;
  images.forEach((img, i) => {
    const { diff, digest } = referenceDump(img, BS, prev);
    prev = digest;
    fs.writeFileSync(
      path.join(dir, `${name}.${i + 1}${gzip ? ".gz" : ""}`),
      gzip ? zlib.gzipSync(diff) : diff,
    );
    fs.writeFileSync(path.join(dir, `${name}.${i + 1}.md5`), digest);
  });
  fs.writeFileSync(path.join(dir, `${name}.ver`), `${images.length}\n`);
}

/** `img` with block `b` replaced by other bytes. */
function withBlock(img: Buffer, b: number, seed: number): Buffer {
  const out = Buffer.from(img);
  pseudoRandom(BS, seed).copy(out, b * BS);
  return out;
}

for (const t of targets()) {
  describe(`what restore reads (${t.name})`, () => {
    let dir = "";
    before(() => dir = tempDir());
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const inDir = (...args: string[]) => run(t, args, { cwd: dir });

    it("blocks a later generation replaced are not read: a corrupt one there stops only its own generation", async () => {
      const g1 = pseudoRandom(8 * BS, 1);
      const g2 = withBlock(withBlock(g1, 2, 10), 5, 11);
      writeChain(dir, "r", [g1, g2]);
      const diff1 = fs.readFileSync(path.join(dir, "r.1"));
      diff1.writeUInt32LE(12345, 4 + 2 * (8 + BS)); // block 2 of generation 1 (generation 2 replaced it): unreadable
      fs.writeFileSync(path.join(dir, "r.1"), diff1);
      const r = await inDir("restore", "r", "r2.img");
      assert.equal(r.code, 0, r.stderr);
      assert.ok(fs.readFileSync(path.join(dir, "r2.img")).equals(g2));
      expectFailure(
        await inDir("restore", "r", "r1.img", "-g", "1"),
        3,
        /r\.1: record 2 is for offset 12345/,
      );
      const v = await inDir("verify", "r");
      assert.equal(v.code, 3);
      assert.match(v.stdout.toString(), /generation 1: BAD/);
    });

    for (const gzip of [false, true]) {
      it(`a chain of 400 generations restores exactly under ulimit -n 64 (${gzip ? "gzip" : "none"})`, async () => {
        const name = gzip ? "long-gz" : "long";
        const images = [pseudoRandom(16 * BS, 2)];
        for (let g = 1; g < 400; g++) images.push(withBlock(images[g - 1], (g * 7) % 16, 100 + g));
        writeChain(dir, name, images, gzip);
        const cmd = [...t.cmd, "restore", name, `${name}.img`].map((a) => `'${a}'`).join(" ");
        const r = spawnSync("bash", ["-c", `ulimit -n 64 && exec ${cmd}`], { cwd: dir, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.ok(fs.readFileSync(path.join(dir, `${name}.img`)).equals(images[399]));
        const old = await inDir("restore", name, `${name}-200.img`, "-g", "200");
        assert.equal(old.code, 0, old.stderr);
        assert.ok(fs.readFileSync(path.join(dir, `${name}-200.img`)).equals(images[199]));
      });
    }

    it("zero blocks of a new file stay holes; --no-sparse writes them; the image is the same", async () => {
      const img = Buffer.alloc(512 * BS);
      for (const b of [0, 100, 511]) pseudoRandom(BS, b).copy(img, b * BS);
      fs.writeFileSync(path.join(dir, "sparse-src.img"), img);
      const b = await inDir("backup", "sp", "sparse-src.img", "--block-size", String(BS));
      assert.equal(b.code, 0, b.stderr);
      for (const [file, extra] of [["holes.img", []], ["dense.img", ["--no-sparse"]]] as const) {
        const r = await inDir("restore", "sp", file, ...extra);
        assert.equal(r.code, 0, r.stderr);
        assert.ok(fs.readFileSync(path.join(dir, file)).equals(img));
      }
      const allocated = (f: string) => fs.statSync(path.join(dir, f)).blocks * 512;
      assert.ok(allocated("holes.img") <= 16 * BS, `holes.img allocates ${allocated("holes.img")} bytes`);
      assert.ok(allocated("dense.img") >= img.length, `dense.img allocates ${allocated("dense.img")} bytes`);
    });

    it("verify shows progress (bytes, percent, ETA) on a terminal", async () => {
      fs.writeFileSync(path.join(dir, "p.img"), pseudoRandom(300 * BS, 3));
      assert.equal((await inDir("backup", "p", "p.img", "--block-size", String(BS))).code, 0);
      const cmd = [...t.cmd, "verify", "p"].map((a) => `'${a}'`).join(" ");
      const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { cwd: dir, encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout);
      assert.match(r.stdout, /verify p: [\d.]+ \S+ \/ 1\.17 MiB \([\d.]+%\)\s+ETA \S+/);
      assert.match(r.stdout, /generation 1: OK/);
    });
  });
}
