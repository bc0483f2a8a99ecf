/**
 * `prune` (README "prune", SPEC §11): the policy decides, removed generations are folded into the next kept
 * one, every kept generation restores exactly, generation numbers stay; crash-safe at every step (SIGKILL,
 * I/O errors, a full disk), readers undisturbed while it runs; chains of the original tools too.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import * as zlib from "node:zlib";
import { decodeManifest, encodeManifest } from "../src/format/manifest.ts";
import {
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
  straceAvailable,
  straceSteps,
  type Target,
  targets,
  tempDir,
  underStrace,
  waitUntil,
} from "./helpers.ts";

const BS = 4096;
/** Generation g of a test chain finished on 2026-11-g at 03:00 local time (Nov 1 is a Sunday). */
const day = (g: number) => new Date(2026, 10, g, 3, 0, 0);

for (const t of targets()) {
  describe(`prune (${t.name})`, () => {
    let dir = "";
    before(() => dir = tempDir());
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const inDir = (...args: string[]) => run(t, args, { cwd: dir });
    const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}: ${r.stderr}`);
    const file = (f: string) => path.join(dir, f);
    const manifest = (name: string, g: number) =>
      JSON.parse(fs.readFileSync(file(`${name}.${g}.json`), "utf8"));

    /**
     * Chain `name` of `n` generations of a 24.02-block image (3 blocks changed each time, never the last
     * one), finished at `when(g)` (default: day g), gzip up to `gzipUpTo` (default n/2) and zstd after; the
     * image of each, by generation.
     */
    async function makeChain(
      name: string,
      n: number,
      o: { seed?: number; when?: (g: number) => Date; gzipUpTo?: number } = {},
    ): Promise<Map<number, Buffer>> {
      const seed = o.seed ?? 1;
      const src = file("src.img");
      fs.writeFileSync(src, pseudoRandom(BS * 24 + 100, seed));
      const images = new Map<number, Buffer>();
      for (let g = 1; g <= n; g++) {
        if (g > 1) changeBlocks(src, BS, (g * 5) % 20, 3, seed * 100 + g);
        images.set(g, fs.readFileSync(src));
        const compress = g <= (o.gzipUpTo ?? n / 2) ? "gzip" : "zstd";
        ok(
          await inDir("backup", name, "src.img", "--block-size", String(BS), "--compress", compress),
          `${g}`,
        );
        setFinished(name, g, (o.when ?? day)(g));
      }
      return images;
    }

    /**
     * Times that make PRUNE fold twice: generations 2..4 into 5 (5.gz becomes 5.zst: a new name) and 6 into
     * 7 (7.zst replaced); 1 (week 44), 5, 7 (daily) and 8 kept. Generation 6 finished on day 7 too.
     */
    const twoFolds = (g: number) => g === 6 ? new Date(2026, 10, 7, 1, 0, 0) : day(g);
    const PRUNE = (name: string) => ["prune", name, "--keep-daily", "3", "--keep-weekly", "2"];

    /** Rewrites generation g's manifest as if its backup had finished at `when`. */
    function setFinished(name: string, g: number, when: Date): void {
      const p = file(`${name}.${g}.json`);
      const m = decodeManifest(fs.readFileSync(p, "utf8"), p);
      fs.writeFileSync(
        p,
        encodeManifest({ ...m, startedAt: when.toISOString(), finishedAt: when.toISOString() }),
      );
    }

    /** Each listed generation restores to its image, and verify passes. */
    async function restoresExactly(name: string, images: Map<number, Buffer>, gens: number[], tt = t) {
      ok(await run(tt, ["verify", name], { cwd: dir }), `verify ${name}`);
      for (const g of gens) {
        const out = file(`${name}.restored`);
        ok(
          await run(tt, ["restore", name, out, "-g", String(g), "--force"], { cwd: dir }),
          `restore ${name} ${g}`,
        );
        assert.ok(fs.readFileSync(out).equals(images.get(g)!), `${name}: generation ${g} differs`);
        fs.rmSync(out);
      }
    }
    /** The chain's generations, as list says. */
    const members = async (name: string): Promise<number[]> =>
      JSON.parse((await inDir("list", name, "--json")).stdout.toString()).generations.map(
        (g: { generation: number }) => g.generation,
      );
    /** The generation numbers that have files. */
    const generationsOf = (name: string) =>
      [...new Set(listDir(dir).map((f) => new RegExp(`^${name}\\.(\\d+)`).exec(f)?.[1]).filter(Boolean))]
        .map(Number).sort((a, b) => a - b);

    it("keeps by policy, folds the rest into the next kept generation: kept ones restore exactly, numbers stay", async () => {
      const images = await makeChain("p", 10);
      // --dry-run: the plan with its reasons, nothing changed
      const before = dirSnapshot(dir);
      const dry = await inDir("prune", "p", "--keep-last", "2", "--keep-weekly", "3", "--dry-run", "--json");
      ok(dry, "dry run");
      assert.deepEqual(dirSnapshot(dir), before);
      const plan = JSON.parse(dry.stdout.toString());
      assert.deepEqual(
        plan.generations.map((
          g: { generation: number; keep: boolean; reasons: string[]; foldedInto: number },
        ) => `${g.generation}:${g.keep ? g.reasons.join("+") : `->${g.foldedInto}`}`),
        // Nov 10 and 9 are in ISO week 46, Nov 8 ends week 45, Nov 1 ends week 44
        [
          "10:newest+last+weekly",
          "9:last",
          "8:weekly",
          "7:->8",
          "6:->8",
          "5:->8",
          "4:->8",
          "3:->8",
          "2:->8",
          "1:weekly",
        ],
      );
      const text = await inDir("prune", "p", "--keep-last", "2", "--keep-weekly", "3", "--dry-run");
      assert.match(text.stdout.toString(), /^7 +2026-11-\d\d \S+ +would fold into 8 *$/m);
      assert.match(text.stderr.toString(), /prune p: would remove 6 of 10 generations of p, kept 1, 8\.\.10/);

      const r = await inDir("prune", "p", "--keep-last", "2", "--keep-weekly", "3", "--log", "p.log");
      ok(r, "prune");
      assert.match(
        r.stderr.toString(),
        /prune p: removed 6 of 10 generations of p, kept 1, 8\.\.10; .* freed in/,
      );
      assert.deepEqual(generationsOf("p"), [1, 8, 9, 10]);
      assert.deepEqual(manifest("p", 8).absorbed, [2, 3, 4, 5, 6, 7]);
      assert.equal(manifest("p", 8).diffFile, "p.8.zst", "the newest generation's compression");
      assert.match(
        fs.readFileSync(file("p.log"), "utf8"),
        /pruned generations 2, 3, 4, 5, 6, 7 of p into generation 8/,
      );
      assert.equal(fs.readFileSync(file("p.ver"), "utf8"), "10\n");
      await restoresExactly("p", images, [1, 8, 9, 10]);
      expectFailure(
        await inDir("restore", "p", "x.img", "-g", "3"),
        2,
        /generation 3 of p was removed by prune \(its blocks are in generation 8\); generations: 1, 8\.\.10/,
      );
      assert.match((await inDir("list", "p")).stdout.toString(), /^1 .*\n8 .*\n9 .*\n10 /m);
      // a lost .ver: repair finds the pruned chain's generations from the manifests
      fs.rmSync(file("p.ver"));
      const repaired = await inDir("repair", "p");
      ok(repaired, "repair");
      assert.match(repaired.stderr, /p\.ver is missing; set it to 10 \(generations 1, 8\.\.10 verify\)/);

      // the first generation removed: the next kept one becomes the full
      ok(await inDir("prune", "p", "--keep-last", "2"), "prune to 2");
      assert.deepEqual(generationsOf("p"), [9, 10]);
      assert.deepEqual(manifest("p", 9).absorbed, [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal(manifest("p", 9).blocksChanged, 25);
      await restoresExactly("p", images, [9, 10]);
      // and the chain goes on
      changeBlocks(file("src.img"), BS, 2, 2, 999);
      images.set(11, fs.readFileSync(file("src.img")));
      ok(await inDir("backup", "p", "src.img"), "backup after prune");
      await restoresExactly("p", images, [9, 10, 11]);
      // nothing to do
      const none = await inDir("prune", "p", "--keep-last", "5");
      ok(none, "nothing to prune");
      assert.match(none.stderr.toString(), /removed 0 of 3 generations of p, kept 9\.\.11; 0 B freed/);
    });

    it("refuses bad input with one line: no rule, a bad count or duration (exit 2), a chain in use (exit 4)", async () => {
      await makeChain("bad", 2);
      const before = dirSnapshot(dir);
      const unchanged = () => assert.deepEqual(dirSnapshot(dir), before);
      expectFailure(
        await inDir("prune", "bad"),
        2,
        /prune needs at least one --keep-\* rule .*--keep-last 1/,
      );
      expectFailure(await inDir("prune", "bad", "--keep-daily", "0"), 2, /needs at least one --keep-\* rule/);
      expectFailure(
        await inDir("prune", "bad", "--keep-daily", "x"),
        2,
        /--keep-daily must be a whole number/,
      );
      expectFailure(await inDir("prune", "bad", "--keep-within", "3w"), 2, /invalid duration '3w'/);
      expectFailure(await inDir("prune", "nosuch", "--keep-last", "1"), 1, /no backup chain nosuch/);
      unchanged();
      const fifo = file("held.fifo");
      execFileSync("mkfifo", [fifo]);
      const held = start(t, ["backup", "bad", fifo], { cwd: dir });
      try {
        await waitForLock("bad");
        expectFailure(
          await inDir("prune", "bad", "--keep-last", "1"),
          4,
          /chain .*bad is in use by another run/,
        );
        unchanged();
      } finally {
        fs.writeFileSync(fifo, fs.readFileSync(file("src.img")));
        await held.done;
      }
    });

    const waitForLock = (name: string) =>
      waitUntil(
        () => fs.existsSync(file(`${name}.lock`)) && fs.readFileSync(file(`${name}.lock`), "utf8") !== "",
        "the lock to be taken",
      );

    it("backup --prune: the new generation, then the policy, in one run", async () => {
      const images = await makeChain("bp", 4);
      changeBlocks(file("src.img"), BS, 7, 1, 77);
      images.set(5, fs.readFileSync(file("src.img")));
      const r = await inDir("backup", "bp", "src.img", "--prune", "--keep-last", "2", "--json");
      ok(r, "backup --prune");
      assert.deepEqual(generationsOf("bp"), [4, 5]);
      const j = JSON.parse(r.stdout.toString());
      assert.equal(j.manifest.generation, 5);
      assert.deepEqual(
        j.prune.generations.filter((g: { keep: boolean }) => g.keep).map((g: { generation: number }) =>
          g.generation
        ),
        [5, 4],
      );
      await restoresExactly("bp", images, [4, 5]);
      expectFailure(
        await inDir("backup", "bp", "src.img", "--keep-last", "2"),
        2,
        /--keep-last needs --prune/,
      );
      expectFailure(await inDir("backup", "bp", "src.img", "--prune"), 2, /at least one --keep-\* rule/);
    });

    it("prunes a chain of the original tools (no manifests, a short last block): merge of what is left rebuilds the newest", async () => {
      // generation g of the original tools: every 3 blocks from 2g changed, never the short last one
      const images = new Map<number, Buffer>();
      let data = pseudoRandom(BS * 12 + 700, 5), digest: Buffer | null = null;
      for (let g = 1; g <= 5; g++) {
        if (g > 1) {
          data = Buffer.concat([
            data.subarray(0, BS * 2 * g),
            pseudoRandom(BS, 50 + g),
            data.subarray(BS * (2 * g + 1)),
          ]);
        }
        images.set(g, data);
        const d = referenceDump(data, BS, digest);
        digest = d.digest;
        fs.writeFileSync(file(`o.${g}${g <= 2 ? ".gz" : ""}`), g <= 2 ? zlib.gzipSync(d.diff) : d.diff);
        fs.writeFileSync(file(`o.${g}.md5`), d.digest);
        fs.utimesSync(file(`o.${g}.md5`), day(g), day(g));
      }
      fs.writeFileSync(file("o.ver"), "5\n");
      // keeps 1 (weekly: Nov 1), 4 and 5: 2 and 3 go into 4, whose diff then lacks the last block
      ok(await inDir("prune", "o", "--keep-last", "2", "--keep-weekly", "2"), "prune");
      assert.deepEqual(generationsOf("o"), [1, 4, 5]);
      const m4 = manifest("o", 4);
      assert.deepEqual(m4.absorbed, [2, 3]);
      assert.equal(m4.sourceSize, BS * 12 + 700);
      assert.equal(m4.finishedAt, day(4).toISOString());
      assert.equal(m4.diffFile, "o.4", "the newest generation's compression (none)");
      await restoresExactly("o", images, [1, 4, 5]);
      ok(await inDir("prune", "o", "--keep-last", "1"), "prune to 1");
      assert.deepEqual(generationsOf("o"), [5]);
      await restoresExactly("o", images, [5]);
      // the original's way: merge the remaining diffs in order
      const merged = file("merged.img");
      ok(await run(t, ["merge", merged], { cwd: dir, input: fs.readFileSync(file("o.5")) }), "merge");
      assert.ok(fs.readFileSync(merged).equals(images.get(5)!));
    });

    it(
      "readers while a prune runs: restore and verify never fail or differ (10 prunes, 4 readers each)",
      {
        skip: (t.name !== "binary" || !straceAvailable()) && "needs the binary and strace",
      },
      async () => {
        for (let trial = 0; trial < 10; trial++) {
          const name = `race${trial}`;
          const images = await makeChain(name, 8, { seed: 30 + trial, when: twoFolds, gzipUpTo: 5 });
          // a reader pauses 300 ms before it opens a diff the prune removes: it read the chain before the
          // fold, and opens its files after the fold (or not), as a slow disk could make it
          const chain = path.join(dir, name);
          const paused: Target = {
            name: t.name,
            cmd: [
              "strace",
              "-f",
              "-qq",
              "-o",
              "/dev/null",
              ...["2.gz", "3.gz", "4.gz", "6.zst"].flatMap((f) => ["-P", `${chain}.${f}`]),
              "-e",
              "inject=openat:delay_enter=300000",
              ...t.cmd,
            ],
          };
          const prune = start(t, PRUNE(name), { cwd: dir });
          let running = true;
          prune.done.then(() => running = false);
          const reader = async (k: number) => {
            await new Promise((r) => setTimeout(r, 30 * k));
            const out = file(`${name}.out${k}`);
            for (let n = k; running || n === k; n++) {
              const g = [8, 7, 5, 1][n % 4];
              const r = await run(paused, ["restore", chain, out, "-g", String(g), "--force"]);
              ok(r, `trial ${trial}: restore -g ${g} during the prune`);
              assert.ok(
                fs.readFileSync(out).equals(images.get(g)!),
                `trial ${trial}: generation ${g} differs`,
              );
              ok(await run(paused, ["verify", chain]), `trial ${trial}: verify during the prune`);
            }
          };
          await Promise.all([reader(0), reader(1), reader(2), reader(3)]);
          ok(await prune.done, `trial ${trial}: prune`);
          assert.deepEqual(generationsOf(name), [1, 5, 7, 8]);
        }
      },
    );

    describe("crashes, I/O errors and a full disk at every step of a prune (binary, strace)", {
      skip: (t.name !== "binary" || !straceAvailable()) && "needs the binary and strace",
    }, () => {
      const pruneSteps = (name: string, calls: string[]) =>
        straceSteps(t, { args: PRUNE(name), calls, cwd: dir });
      const STEPS = ["rename", "unlink", "fsync", "fdatasync"];

      it("fault: SIGKILL before each rename, unlink and sync of a prune: the chain verifies and restores at once; the next run finishes it", async () => {
        await makeChain("probe", 8, { when: twoFolds, gzipUpTo: 5 });
        const points = pruneSteps("probe", STEPS);
        assert.ok(points.length >= 10, `only ${points.length} steps traced`);
        for (const [i, point] of points.entries()) {
          const name = `kill${i}`;
          const images = await makeChain(name, 8, { seed: 60 + i, when: twoFolds, gzipUpTo: 5 });
          const killed = await run(underStrace(t, { ...point, kill: true }), PRUNE(name), { cwd: dir });
          assert.ok(
            killed.signal === "SIGKILL" || killed.code === 137,
            `${point.syscall} #${point.when}: ${killed.stderr}`,
          );
          // before anything else runs: whatever the kill left verifies, and every kept generation restores
          await restoresExactly(name, images, await members(name));
          const next = i % 2 ? await inDir("backup", name, "src.img") : await inDir(...PRUNE(name));
          ok(next, `the run after a kill at ${point.syscall} #${point.when}`);
          if (i % 2) {
            // generation 9 on day 8 too: the policy then keeps 9 instead of 8
            images.set(9, fs.readFileSync(file("src.img")));
            setFinished(name, 9, new Date(2026, 10, 8, 4, 0, 0));
          }
          assert.ok(
            !listDir(dir).some((f) => f.startsWith(`${name}.`) && /\.tmp-|\.journal/.test(f)),
            `${point.syscall} #${point.when}: leftovers`,
          );
          ok(await inDir(...PRUNE(name)), "prune again");
          assert.deepEqual(generationsOf(name), i % 2 ? [1, 5, 7, 9] : [1, 5, 7, 8]);
          await restoresExactly(name, images, await members(name));
        }
      });

      it("fault: an I/O error at each step of a prune: one line, exit 1; the chain stays whole", async () => {
        await makeChain("eprobe", 8, { when: twoFolds, gzipUpTo: 5 });
        for (const [i, point] of pruneSteps("eprobe", STEPS).entries()) {
          const name = `eio${i}`;
          const images = await makeChain(name, 8, { seed: 80 + i, when: twoFolds, gzipUpTo: 5 });
          const r = await run(underStrace(t, point), PRUNE(name), { cwd: dir });
          if (/is done, but .*\.last-prune\.json/.test(r.stderr)) {
            // writing the run's record after the prune (monitor/monitored_run.ts): the failure says it stands
            assert.equal(r.code, 1);
            assert.match(r.stderr.trim().split("\n").at(-1)!, /input\/output error$/);
          } else if (r.code !== 0) expectFailure(r, 1, /input\/output error/);
          else {
            // or writing the run's record at its start, which is a warning (monitor/monitored_run.ts)
            assert.ok(
              point.syscall === "unlink" ||
                /warning: the run.s start could not be recorded \(.*\.last-prune\.json: input\/output error/
                  .test(r.stderr),
              `EIO at ${point.syscall} #${point.when} went unnoticed`,
            );
          }
          await restoresExactly(name, images, await members(name));
          ok(await inDir(...PRUNE(name)), `the run after EIO at ${point.syscall} #${point.when}`);
          assert.deepEqual(generationsOf(name), [1, 5, 7, 8]);
          await restoresExactly(name, images, [1, 5, 7, 8]);
        }
      });

      it(
        "fault: a full disk: refused before it starts when the largest new diff may not fit; ENOSPC while writing changes nothing",
        {
          skip: process.getuid?.() !== 0 && "needs root (tmpfs)",
        },
        async () => {
          const small = file("small");
          fs.mkdirSync(small);
          execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", small]);
          try {
            const src = file("small-src.img"), tiny = (...a: string[]) => run(t, a, { cwd: small });
            // compressed inputs of a few KiB whose fold is an uncompressed 800 KiB full
            const image = Buffer.alloc(BS * 200, 7);
            fs.writeFileSync(src, image);
            ok(await tiny("backup", "f", src, "--block-size", String(BS), "--compress", "gzip"), "full");
            image.fill(8, 0, BS * 100);
            fs.writeFileSync(src, image);
            ok(await tiny("backup", "f", src, "--compress", "gzip"), "incremental");
            image.fill(9, 0, BS);
            fs.writeFileSync(src, image);
            ok(await tiny("backup", "f", src, "--compress", "none"), "uncompressed newest");
            const before = dirSnapshot(small);
            const filler = path.join(small, "filler");
            const fill = (leave: number) => {
              fs.rmSync(filler, { force: true });
              const s = fs.statfsSync(small);
              fs.writeFileSync(filler, Buffer.alloc(s.bavail * s.bsize - leave));
            };
            fill(400 * 1024); // more than the inputs, less than the new diff
            expectFailure(
              await tiny("prune", "f", "--keep-last", "1"),
              1,
              /writing .*f\.3\.tmp-\d+: no space left on device/,
            );
            fs.rmSync(filler);
            assert.deepEqual(dirSnapshot(small), before);
            fill(4096); // less than the inputs
            expectFailure(
              await tiny("prune", "f", "--keep-last", "1"),
              1,
              /not enough free space in \. to prune f: the new diff of generation 3 may take up to \d+ bytes, \d+ are free; nothing was changed/,
            );
            fs.rmSync(filler);
            assert.deepEqual(dirSnapshot(small), before);
            ok(await tiny("prune", "f", "--keep-last", "1"), "prune with room");
            ok(await tiny("verify", "f"), "verify");
            ok(await tiny("restore", "f", "out.img"), "restore");
            assert.ok(fs.readFileSync(path.join(small, "out.img")).equals(image));
          } finally {
            execFileSync("umount", [small]);
          }
        },
      );
    });
  });
}
