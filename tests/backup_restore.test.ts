/** backup / restore / verify / list on local files: every generation restores to the source at that time. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import {
  changeBlocks,
  it,
  listDir,
  pseudoRandom,
  referenceDump,
  run,
  type Target,
  targets,
  tempDir,
} from "./helpers.ts";

const BS = 4096;

async function ok(t: Target, args: string[], cwd: string) {
  const r = await run(t, args, { cwd });
  assert.equal(r.code, 0, `blockdiff ${args.join(" ")} failed: ${r.stderr}`);
  return r;
}

for (const t of targets()) {
  describe(`backup chain (${t.name})`, () => {
    const dir = tempDir();
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const src = path.join(dir, "src.img");

    for (const compression of ["none", "gzip", "zstd", "lzop"]) {
      it(`full + incrementals with --compress ${compression}; restore of every generation is exact`, async () => {
        const name = `c-${compression}`;
        const versions: Buffer[] = [];
        // sizes not a multiple of the block size; grows, shrinks, grows again, unchanged
        const steps: (() => void)[] = [
          () => fs.writeFileSync(src, pseudoRandom(BS * 20 + 100, 1)),
          () => changeBlocks(src, BS, 2, 3, 2),
          () => fs.appendFileSync(src, pseudoRandom(BS * 5 + 7, 3)),
          () => fs.truncateSync(src, BS * 9 + 1),
          () => fs.truncateSync(src, BS * 9),
          () => {},
          () => fs.appendFileSync(src, pseudoRandom(BS * 3 + 17, 4)),
        ];
        for (const [i, step] of steps.entries()) {
          step();
          versions.push(fs.readFileSync(src));
          const r = await ok(t, [
            "backup",
            name,
            "src.img",
            "--compress",
            compression,
            "--block-size",
            `${BS}`,
          ], dir);
          assert.match(r.stderr, new RegExp(`${name}\\.${i + 1} (full|incremental):`));
        }
        assert.equal(fs.readFileSync(path.join(dir, `${name}.ver`), "utf8"), `${steps.length}\n`);
        for (let g = 1; g <= steps.length; g++) {
          const out = `restore-${name}-${g}.img`;
          await ok(t, ["restore", name, out, "--generation", String(g)], dir);
          assert.ok(fs.readFileSync(path.join(dir, out)).equals(versions[g - 1]), `generation ${g} differs`);
        }
        const v = await ok(t, ["verify", name], dir);
        assert.equal(v.stdout.toString().match(/: OK /g)?.length, steps.length, v.stdout.toString());
        // the unchanged step wrote a diff with only the header
        const m6 = JSON.parse(fs.readFileSync(path.join(dir, `${name}.6.json`), "utf8"));
        assert.equal(m6.blocksChanged, 0);
      });
    }

    it("worker threads and the main-thread-only path write byte-identical files", async () => {
      // 10 MiB: several 2 MiB read chunks and many 1 MiB compression pieces; half-compressible blocks
      const data = pseudoRandom(10 * 1024 * 1024 + 999, 21);
      for (let off = 0; off < data.length; off += BS) {
        data.subarray(off + 1500, off + BS).fill(0);
      }
      fs.writeFileSync(src, data);
      for (const compression of ["none", "gzip", "zstd"]) {
        for (const threads of ["0", "2"]) {
          const r = await run(t, [
            "backup",
            `par-${compression}-${threads}`,
            "src.img",
            "--compress",
            compression,
          ], {
            cwd: dir,
            env: { BLOCKDIFF_THREADS: threads },
          });
          assert.equal(r.code, 0, r.stderr);
        }
        const ext = { none: "", gzip: ".gz", zstd: ".zst" }[compression];
        for (const f of [`.1${ext}`, ".1.md5"]) {
          const a = fs.readFileSync(path.join(dir, `par-${compression}-0${f}`));
          const b = fs.readFileSync(path.join(dir, `par-${compression}-2${f}`));
          assert.ok(a.equals(b), `${compression}: ${f} differs between the two paths`);
        }
        await ok(t, ["restore", `par-${compression}-2`, `par-${compression}.img`], dir);
        assert.ok(fs.readFileSync(path.join(dir, `par-${compression}.img`)).equals(data));
      }
    });

    it("security: backup files are mode 0600; the original's bytes, a manifest and a JSON summary", async () => {
      fs.writeFileSync(src, pseudoRandom(BS * 8 + 5, 7));
      const r = await ok(t, ["backup", "fmt", "src.img", "--block-size", String(BS), "--json"], dir);
      const ref = referenceDump(fs.readFileSync(src), BS, null);
      assert.ok(fs.readFileSync(path.join(dir, "fmt.1")).equals(ref.diff));
      assert.ok(fs.readFileSync(path.join(dir, "fmt.1.md5")).equals(ref.digest));
      for (const f of ["fmt.1", "fmt.1.md5", "fmt.1.json", "fmt.ver"]) {
        assert.equal(fs.statSync(path.join(dir, f)).mode & 0o777, 0o600, f);
      }
      const summary = JSON.parse(r.stdout.toString());
      assert.equal(summary.manifest.generation, 1);
      assert.equal(summary.manifest.sourceSize, BS * 8 + 5);
      assert.equal(summary.manifest.blocksChanged, 9);
      assert.equal(summary.manifest.diffSha256.length, 64);
      assert.equal(summary.manifest.source, src); // absolute, although typed as src.img
      assert.ok(!listDir(dir).some((f) => f.includes(".tmp-")), "temporary files left behind");
    });

    it("restores and verifies a chain written by the original tools (no manifests)", async () => {
      const v1 = pseudoRandom(BS * 6 + 300, 11);
      const g1 = referenceDump(v1, BS, null);
      const v2 = Buffer.concat([v1.subarray(0, BS * 2), pseudoRandom(BS, 12), v1.subarray(BS * 3, BS * 4)]);
      const g2 = referenceDump(v2, BS, g1.digest);
      fs.writeFileSync(path.join(dir, "orig.1"), g1.diff);
      fs.writeFileSync(path.join(dir, "orig.1.md5"), g1.digest);
      fs.writeFileSync(path.join(dir, "orig.2"), g2.diff);
      fs.writeFileSync(path.join(dir, "orig.2.md5"), g2.digest);
      fs.writeFileSync(path.join(dir, "orig.ver"), "2\n");
      await ok(t, ["restore", "orig", "orig1.img", "-g", "1"], dir);
      await ok(t, ["restore", "orig", "orig2.img"], dir);
      assert.ok(fs.readFileSync(path.join(dir, "orig1.img")).equals(v1));
      assert.ok(fs.readFileSync(path.join(dir, "orig2.img")).equals(v2));
      const v = await ok(t, ["verify", "orig"], dir);
      assert.match(v.stdout.toString(), /generation 2: OK .*no manifest/);
      // and the next backup continues the original chain
      fs.writeFileSync(src, v2);
      await ok(t, ["backup", "orig", "src.img"], dir);
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "orig.3.json"), "utf8")).blocksChanged, 0);
    });

    it("--monthly names the chain NAME-YYYYMM; list shows chains and generations", async () => {
      fs.writeFileSync(src, pseudoRandom(BS * 3, 13));
      await ok(t, ["backup", "mon", "src.img", "--monthly"], dir);
      const d = new Date();
      const month = `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, "0")}`;
      assert.ok(fs.existsSync(path.join(dir, `mon-${month}.ver`)));
      const l = await ok(t, ["list", `mon-${month}`], dir);
      assert.match(l.stdout.toString(), /^1 +\S+ \S+ +12\.0 KiB +1\/1 \(100\.0%\) +mon-\d{6}\.1 /m);
      const all = await ok(t, ["list", "."], dir);
      assert.match(all.stdout.toString(), new RegExp(`^mon-${month} +1 `, "m"));
      const j = JSON.parse((await ok(t, ["list", `mon-${month}`, "--json"], dir)).stdout.toString());
      assert.equal(j.generations[0].blocksChanged, 1); // default block size 16384
    });

    it("a run without --compress keeps the chain's compression and level; a change is said and logged", async () => {
      const versions: Buffer[] = [];
      const step = async (g: number, extra: string[]) => {
        fs.writeFileSync(src, pseudoRandom(BS * 4, 40 + g));
        versions.push(fs.readFileSync(src));
        return await ok(t, ["backup", "keepc", "src.img", "--log", "keepc.log", ...extra], dir);
      };
      await step(1, ["--compress", "gzip", "--compress-level", "7"]);
      const r2 = await step(2, []);
      assert.equal(r2.stderr.trim().split("\n").length, 1, r2.stderr);
      assert.ok(fs.existsSync(path.join(dir, "keepc.2.gz")));
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "keepc.2.json"), "utf8")).compressionLevel, 7);
      const r3 = await step(3, ["--compress", "zstd"]);
      const change = "compression of keepc changes from gzip to zstd with generation 3 (--compress)";
      assert.match(r3.stderr, new RegExp(`^blockdiff: ${change.replace(/[()]/g, "\\$&")}$`, "m"));
      assert.match(
        fs.readFileSync(path.join(dir, "keepc.log"), "utf8"),
        new RegExp(change.replace(/[()]/g, "\\$&")),
      );
      assert.ok(fs.existsSync(path.join(dir, "keepc.3.zst")));
      assert.equal(JSON.parse(fs.readFileSync(path.join(dir, "keepc.3.json"), "utf8")).compressionLevel, 3);
      await step(4, []);
      assert.ok(fs.existsSync(path.join(dir, "keepc.4.zst")));
      for (let g = 1; g <= 4; g++) {
        await ok(t, ["restore", "keepc", `keepc-${g}.img`, "-g", String(g)], dir);
        assert.ok(
          fs.readFileSync(path.join(dir, `keepc-${g}.img`)).equals(versions[g - 1]),
          `generation ${g}`,
        );
      }
    });

    it("--monthly chains are found by their base name: list shows the months, restore the newest", async () => {
      const older = pseudoRandom(BS * 3, 21), newer = pseudoRandom(BS * 3, 22);
      // last month's chain as backup --monthly made it then, and this month's
      fs.writeFileSync(src, older);
      await ok(t, ["backup", "bym-200001", "src.img"], dir);
      fs.writeFileSync(src, newer);
      await ok(t, ["backup", "bym", "src.img", "--monthly"], dir);
      const d = new Date();
      const month = `${d.getFullYear()}${String(d.getMonth() + 1).padStart(2, "0")}`;
      const l = (await ok(t, ["list", "bym"], dir)).stdout.toString();
      assert.match(l, /^bym-200001 +1 /m);
      assert.match(l, new RegExp(`^bym-${month} +1 `, "m"));
      const j = JSON.parse((await ok(t, ["list", "bym", "--monthly", "--json"], dir)).stdout.toString());
      assert.deepEqual(j.map((c: { name: string }) => c.name), ["bym-200001", `bym-${month}`]);
      const r = await ok(t, ["restore", "bym", "bym.img"], dir);
      assert.match(r.stderr, new RegExp(`restored generation 1 of bym-${month} `));
      assert.ok(fs.readFileSync(path.join(dir, "bym.img")).equals(newer));
      await ok(t, ["restore", "bym", "bym-m.img", "--monthly"], dir);
      assert.ok(fs.readFileSync(path.join(dir, "bym-m.img")).equals(newer));
      await ok(t, ["restore", "bym-200001", "bym-old.img"], dir);
      assert.ok(fs.readFileSync(path.join(dir, "bym-old.img")).equals(older));
      // a chain NAME of its own is NAME, unless --monthly
      await ok(t, ["backup", "bym", "src.img"], dir);
      assert.match((await ok(t, ["list", "bym"], dir)).stdout.toString(), /^1 +\S+/m);
      assert.match((await ok(t, ["list", "bym", "--monthly"], dir)).stdout.toString(), /^bym-200001 /m);
      const none = await run(t, ["restore", "nomonths", "x.img", "--monthly"], { cwd: dir });
      assert.equal(none.code, 1, none.stderr);
      assert.equal(none.stderr, "blockdiff: no monthly backup chain nomonths-YYYYMM (no nomonths-*.ver)\n");
    });

    it("shows progress (bytes, percent, ETA, MB/s) on a terminal, and only the summary otherwise", async () => {
      fs.writeFileSync(src, pseudoRandom(BS * 300, 15));
      const cmd = [...t.cmd, "backup", "tty", "src.img"].map((a) => `'${a}'`).join(" ");
      const r = spawnSync("script", ["-qec", cmd, "/dev/null"], { cwd: dir, encoding: "utf8" });
      assert.equal(r.status, 0, r.stdout);
      assert.match(r.stdout, /tty\.1: [\d.]+ \S+ \/ 1\.17 MiB \([\d.]+%\)\s+ETA \S+\s+[\d.]+ MB\/s/);
      assert.match(r.stdout, /blockdiff: tty\.1 full: 75\/75 blocks changed/);
      const plain = await ok(t, ["backup", "tty", "src.img"], dir);
      assert.equal(plain.stderr.trim().split("\n").length, 1, plain.stderr);
      assert.doesNotMatch(plain.stderr, /ETA/);
    });

    it("--log appends timestamped lines; --help works for every command", async () => {
      fs.writeFileSync(src, pseudoRandom(BS * 2, 14));
      await ok(t, ["backup", "logged", "src.img", "--log", "run.log"], dir);
      const log = fs.readFileSync(path.join(dir, "run.log"), "utf8");
      assert.match(log, /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\] backup logged generation 1 \(full\)/m);
      assert.match(log, /generation 1 complete/);
      for (const cmd of ["backup", "restore", "verify", "list", "dump", "merge"]) {
        const h = await ok(t, [cmd, "--help"], dir);
        assert.match(h.stdout.toString(), new RegExp(`^usage: blockdiff ${cmd}`));
      }
      assert.match((await ok(t, ["--help"], dir)).stdout.toString(), /exit codes/);
    });
  });
}
