/**
 * What a chain promises (README "What blockdiff promises"): a lost or wrong `.ver` is refused, never acted
 * on; `repair` sets it from what verifies; one writer per chain at a time; a commit killed or failing at any
 * step is finished or undone; the exit codes and the `--log` lines of failures; an empty source.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
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
  type RunResult,
  start,
  straceAvailable,
  straceSteps,
  targets,
  tempDir,
  underStrace,
  waitUntil,
} from "./helpers.ts";

const BS = 4096;

for (const t of targets()) {
  describe(`chain promises (${t.name})`, () => {
    let dir = "";
    before(() => dir = tempDir());
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    const inDir = (...args: string[]) => run(t, args, { cwd: dir });
    const backup = (name: string, source = "src.img", extra: string[] = [], tt = t) =>
      run(tt, ["backup", name, source, "--block-size", String(BS), ...extra], { cwd: dir });
    const ok = (r: RunResult, what: string) => assert.equal(r.code, 0, `${what}: ${r.stderr}`);

    /** Chain `name` of `n` generations of src.img (3 blocks changed each time); the image of each. */
    async function makeChain(name: string, n: number, seed = 1): Promise<Buffer[]> {
      const src = path.join(dir, "src.img");
      fs.writeFileSync(src, pseudoRandom(BS * 24 + 100, seed));
      const images: Buffer[] = [];
      for (let g = 1; g <= n; g++) {
        if (g > 1) changeBlocks(src, BS, (g * 5) % 20, 3, seed * 100 + g);
        images.push(fs.readFileSync(src));
        ok(await backup(name), `backup ${name} ${g}`);
      }
      return images;
    }

    /** Every generation restores to its image, and verify passes. */
    async function restoresExactly(name: string, images: Buffer[]): Promise<void> {
      ok(await inDir("verify", name), `verify ${name}`);
      for (const [i, img] of images.entries()) {
        const out = path.join(dir, `${name}.restored`);
        ok(await inDir("restore", name, out, "-g", String(i + 1), "--force"), `restore ${name} -g ${i + 1}`);
        assert.ok(fs.readFileSync(out).equals(img), `${name}: generation ${i + 1} differs`);
        fs.rmSync(out);
      }
    }

    /** A backup of `name` from a FIFO nobody writes to yet: it holds the chain's lock until fed or killed. */
    async function heldRun(name: string, extra: string[] = []) {
      const fifo = path.join(dir, `${name}.fifo`);
      execFileSync("mkfifo", [fifo]);
      const p = start(t, ["backup", name, fifo, "--block-size", String(BS), ...extra], { cwd: dir });
      await waitUntil(
        () => fs.readFileSync(path.join(dir, `${name}.lock`), "utf8") !== "",
        "the lock to be taken",
      );
      return { ...p, feed: (data: Buffer) => fs.writeFileSync(fifo, data) };
    }

    const ver = (name: string) => fs.readFileSync(path.join(dir, `${name}.ver`), "utf8");
    const aside = (name: string) => listDir(dir).filter((f) => f.startsWith(`${name}.repair-`));

    it("fault: a lost .ver: backup refuses and changes nothing; repair rebuilds it; the chain goes on", async () => {
      const images = await makeChain("lost", 3);
      fs.rmSync(path.join(dir, "lost.ver"));
      const snap = dirSnapshot(dir);
      expectFailure(
        await backup("lost"),
        3,
        /chain lost: lost\.ver is missing but generation files exist \(lost\.1, .*\); nothing was changed \(run 'blockdiff repair lost'/,
      );
      expectFailure(
        await inDir("restore", "lost", "l.img"),
        3,
        /lost\.ver is missing .*blockdiff repair lost/,
      );
      assert.deepEqual(dirSnapshot(dir), snap);
      const dry = await inDir("repair", "lost", "--dry-run");
      ok(dry, "repair --dry-run");
      assert.match(dry.stderr, /lost\.ver is missing; would set it to 3 \(generations 1\.\.3 verify\)/);
      assert.deepEqual(dirSnapshot(dir), snap, "a dry run changed something");
      const r = await inDir("repair", "lost");
      ok(r, "repair");
      assert.match(r.stdout.toString(), /generation 1: OK[^]*generation 3: OK/);
      assert.equal(ver("lost"), "3\n");
      changeBlocks(path.join(dir, "src.img"), BS, 1, 1, 77);
      images.push(fs.readFileSync(path.join(dir, "src.img")));
      ok(await backup("lost"), "backup after repair");
      await restoresExactly("lost", images);
    });

    it("fault: .ver set back (3 -> 1, 3 -> 2): backup refuses, nothing replaced; repair sets it to 3", async () => {
      const images = await makeChain("back", 3);
      for (
        const [to, message] of [
          ["1", /back\.ver says 1 but generation 2 is complete \(back\.2\.json matches its files\)/],
          ["2", /back\.ver says 2 but generation 3 is complete \(back\.3\.json matches its files\)/],
        ] as const
      ) {
        fs.writeFileSync(path.join(dir, "back.ver"), `${to}\n`);
        const snap = dirSnapshot(dir);
        expectFailure(await backup("back"), 3, message);
        assert.deepEqual(dirSnapshot(dir), snap);
      }
      ok(await inDir("repair", "back"), "repair");
      assert.equal(ver("back"), "3\n");
      assert.deepEqual(aside("back"), [], "nothing to move aside");
      await restoresExactly("back", images);
    });

    it("fault: .ver past the generations or at a missing file: exit 3 in backup, restore and verify; repair", async () => {
      const images = await makeChain("past", 3);
      fs.writeFileSync(path.join(dir, "past.ver"), "5\n");
      expectFailure(await backup("past"), 3, /past\.ver says 5 but generation 4 has no diff file/);
      expectFailure(await inDir("restore", "past", "p.img"), 3, /digest file past\.5\.md5 is missing/);
      assert.equal((await inDir("verify", "past")).code, 3);
      ok(await inDir("repair", "past"), "repair");
      assert.equal(ver("past"), "3\n");

      fs.rmSync(path.join(dir, "past.3.md5")); // the generation .ver names lost its digest
      expectFailure(await backup("past"), 3, /past\.ver says 3 but generation 3 has no digest file/);
      expectFailure(await inDir("restore", "past", "p.img"), 3, /digest file .*past\.3\.md5 is missing/);
      const v = await inDir("verify", "past");
      assert.equal(v.code, 3);
      assert.match(v.stdout.toString(), /generation 3: BAD .*past\.3\.md5 is missing/);
      const r = await inDir("repair", "past");
      ok(r, "repair");
      assert.match(
        r.stderr,
        /past\.ver says 3; set it to 2 .*; move 2 files of later generations to .*past\.repair-/,
      );
      assert.equal(ver("past"), "2\n");
      const [moved] = aside("past");
      assert.deepEqual(listDir(path.join(dir, moved)), ["past.3", "past.3.json"], "nothing deleted");
      ok(await backup("past"), "backup after repair");
      await restoresExactly("past", [...images.slice(0, 2), fs.readFileSync(path.join(dir, "src.img"))]);
    });

    it("fault: a corrupt generation in the middle: verify says which depend on it; repair keeps 1..K", async () => {
      const images = await makeChain("mid", 4);
      const diff = path.join(dir, "mid.2");
      const bytes = fs.readFileSync(diff);
      bytes[4 + 8 + 10] ^= 0x20; // a data byte of its first record
      fs.writeFileSync(diff, bytes);
      const v = await inDir("verify", "mid");
      assert.equal(v.code, 3);
      const out = v.stdout.toString();
      assert.match(out, /generation 1: OK/);
      assert.match(out, /generation 2: BAD .*mid\.2: block \d+ does not match its digest/);
      assert.match(
        out,
        /generation 3: BAD not restorable \(depends on generation 2\); \d+\/25 blocks in diff/,
      );
      assert.match(out, /generation 4: BAD not restorable \(depends on generation 2\)/);
      assert.match(v.stderr, /3 of 4 generations failed verification \(first: 2\)/);
      const r = await inDir("repair", "mid");
      ok(r, "repair");
      assert.equal(ver("mid"), "1\n");
      const [moved] = aside("mid");
      assert.equal(listDir(path.join(dir, moved)).length, 9, "generations 2..4 moved aside whole");
      ok(await backup("mid"), "backup after repair");
      await restoresExactly("mid", [images[0], images[3]]);
    });

    it("fault: a chain of the original tools (no manifests) goes on; a killed original run's files are removed", async () => {
      // written as the original blockdiff_backup does: dump 5< NAME.(N-1).md5 6> NAME.N.md5 > NAME.N
      const src = path.join(dir, "src.img");
      fs.writeFileSync(src, pseudoRandom(BS * 16 + 5, 9));
      const images: Buffer[] = [];
      for (let g = 1; g <= 2; g++) {
        if (g > 1) changeBlocks(src, BS, 3, 2, 90 + g);
        images.push(fs.readFileSync(src));
        const fds: Record<number, number> = { 6: fs.openSync(path.join(dir, `orig.${g}.md5`), "w") };
        if (g > 1) fds[5] = fs.openSync(path.join(dir, `orig.${g - 1}.md5`), "r");
        const outFd = fs.openSync(path.join(dir, `orig.${g}`), "w");
        const r = await run(t, ["dump", "src.img"], {
          cwd: dir,
          fds,
          stdoutFd: outFd,
          env: { BLOCKSIZE: `${BS}` },
        });
        Object.values(fds).forEach((fd) => fs.closeSync(fd));
        fs.closeSync(outFd);
        ok(r, `dump ${g}`);
        fs.writeFileSync(path.join(dir, "orig.ver"), `${g}\n`);
      }
      // a run of the original killed mid-dump: partial files under the final names, .ver not updated
      fs.writeFileSync(path.join(dir, "orig.3"), fs.readFileSync(path.join(dir, "orig.1")).subarray(0, 5000));
      fs.writeFileSync(
        path.join(dir, "orig.3.md5"),
        fs.readFileSync(path.join(dir, "orig.1.md5")).subarray(0, 52),
      );
      changeBlocks(src, BS, 7, 1, 99);
      images.push(fs.readFileSync(src));
      const log = path.join(dir, "orig.log");
      ok(await backup("orig", "src.img", ["--log", log]), "backup onto the original's chain");
      assert.match(fs.readFileSync(log, "utf8"), /removed a leftover of an incomplete run: .*orig\.3\.md5/);
      assert.equal(ver("orig"), "3\n");
      await restoresExactly("orig", images);
      fs.rmSync(path.join(dir, "orig.ver"));
      expectFailure(await backup("orig"), 3, /orig\.ver is missing/);
      ok(await inDir("repair", "orig"), "repair");
      assert.equal(ver("orig"), "3\n");
    });

    it("fault: two backups of one chain at once: exactly one runs, the other fails at once naming it (20 trials)", async () => {
      await makeChain("two", 1);
      const fifo = path.join(dir, "two.fifo");
      execFileSync("mkfifo", [fifo]);
      const img = fs.readFileSync(path.join(dir, "src.img"));
      for (let trial = 0; trial < 20; trial++) {
        const before = Number(ver("two"));
        const runs = [0, 1].map(() =>
          start(t, ["backup", "two", fifo, "--block-size", String(BS)], { cwd: dir })
        );
        // the loser fails before it opens the source; the winner waits on the FIFO for it
        const first = await Promise.race(runs.map((p, i) => p.done.then((r) => ({ r, i }))));
        expectFailure(
          first.r,
          4,
          /chain two is in use by another run \(pid \d+ on \S+ since \S+, blockdiff backup; lock two\.lock\)/,
        );
        fs.writeFileSync(fifo, img);
        const second = await runs[1 - first.i].done;
        ok(second, `trial ${trial}: the winner`);
        assert.equal(Number(ver("two")), before + 1, `trial ${trial}: .ver`);
      }
      assert.ok(!listDir(dir).some((f) => f.startsWith("two.") && f.includes(".tmp-")));
      ok(await inDir("verify", "two"), "verify");
    });

    it("fault: a holder killed with SIGKILL holds nothing: the next run goes ahead at once", async () => {
      await makeChain("held", 1);
      const p = await heldRun("held");
      process.kill(p.child.pid!, "SIGKILL");
      await p.done;
      ok(await backup("held"), "the next run");
      assert.equal(ver("held"), "2\n");
    });

    it("fault: .ver changed during the run by a writer that ignores the lock: nothing is published (exit 3)", async () => {
      await makeChain("moved", 1);
      const p = await heldRun("moved");
      fs.writeFileSync(path.join(dir, "moved.ver"), "7\n");
      p.feed(fs.readFileSync(path.join(dir, "src.img")));
      expectFailure(
        await p.done,
        3,
        /moved\.ver changed during this run \(1 -> 7: .*\); nothing of this run/,
      );
      assert.deepEqual(
        listDir(dir).filter((f) => f.startsWith("moved.2") || f.includes("moved.journal")),
        [],
      );
    });

    for (const sameChain of [false, true]) {
      const n = t.name === "binary" ? 100 : 10; // (from source each start costs a Deno)
      it(`fault: ${n} simultaneous starts ${sameChain ? "of one chain" : "with one --lock FILE"}: exactly one runs`, async () => {
        const fifo = path.join(dir, `many-${sameChain}.fifo`);
        execFileSync("mkfifo", [fifo]);
        fs.writeFileSync(path.join(dir, "many.img"), pseudoRandom(BS * 4, 5));
        const runs = Array.from({ length: n }, (_, i) =>
          start(t, [
            "backup",
            sameChain ? `many-one` : `many-${i}`,
            fifo,
            "--block-size",
            String(BS),
            ...(sameChain ? [] : ["--lock", "many.lock"]),
          ], { cwd: dir }));
        const results: (RunResult | null)[] = runs.map(() => null);
        runs.forEach((p, i) => p.done.then((r) => results[i] = r));
        await waitUntil(
          () => results.filter((r) => r !== null).length === n - 1,
          `${n - 1} runs to give up`,
          120000,
        );
        fs.writeFileSync(fifo, fs.readFileSync(path.join(dir, "many.img")));
        await Promise.all(runs.map((p) => p.done));
        const codes = results.map((r) => r!.code);
        assert.equal(codes.filter((c) => c === 0).length, 1, `exit codes ${codes}`);
        assert.equal(codes.filter((c) => c === 4).length, n - 1, `exit codes ${codes}`);
        for (const r of results.filter((r) => r!.code === 4)) {
          expectFailure(
            r!,
            4,
            sameChain ? /chain many-one is in use by another run/ : /lock file many\.lock is in use/,
          );
        }
      });
    }

    it("fault: bad --block-size and BLOCKSIZE are usage errors (2); a .ver that is a directory is corruption (3)", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 4, 3));
      for (
        const [args, env, message] of [
          [
            ["--block-size", "128m"],
            {},
            /--block-size must be a block size from 1 to 67108864 bytes .* not '128m'/,
          ],
          [["--block-size", "0"], {}, /--block-size must be a block size/],
          [[], { BLOCKSIZE: "abc" }, /BLOCKSIZE must be a block size from 1 to 67108864 bytes, not 'abc'/],
          [[], { BLOCKSIZE: "0" }, /BLOCKSIZE must be a block size/],
        ] as const
      ) {
        expectFailure(await run(t, ["backup", "bs", "src.img", ...args], { cwd: dir, env }), 2, message);
        expectFailure(
          await run(t, ["dump", ...args, "--new-digest", "d.md5", "src.img"], {
            cwd: dir,
            env,
            stdoutFd: devNull(),
          }),
          2,
          message,
        );
      }
      assert.ok(!listDir(dir).some((f) => f.startsWith("bs.")), "a refused run left files");
      await makeChain("vdir", 2);
      fs.rmSync(path.join(dir, "vdir.ver"));
      fs.mkdirSync(path.join(dir, "vdir.ver"));
      for (
        const cmd of [["backup", "vdir", "src.img"], ["restore", "vdir", "v.img"], ["verify", "vdir"], [
          "list",
          "vdir",
        ]]
      ) {
        expectFailure(await inDir(...cmd), 3, /vdir\.ver: is a directory, not a version file/);
      }
    });

    it("fault: --log gets a line for every run that starts, whatever ends it", async () => {
      await makeChain("logged", 1);
      const log = path.join(dir, "logged.log");
      const lines = () => fs.readFileSync(log, "utf8").trim().split("\n");
      expectFailure(
        await backup("logged", "missing.img", ["--log", log]),
        1,
        /cannot open source missing\.img/,
      );
      assert.match(
        lines().at(-1)!,
        /^\[[\d-]+ [\d:]+\] backup logged FAILED \(exit 1\): cannot open source missing\.img/,
      );
      expectFailure(await backup("logged", "src.img", ["--log", log, "--frobnicate"]), 2, /unknown option/);
      assert.match(lines().at(-1)!, /backup FAILED \(exit 2\): backup: unknown option --frobnicate/);
      fs.writeFileSync(path.join(dir, "logged.ver"), "garbage\n");
      expectFailure(await backup("logged", "src.img", ["--log", log]), 3, /expected a generation number/);
      assert.match(
        lines().at(-1)!,
        /backup logged FAILED \(exit 3\): .*logged\.ver: expected a generation number/,
      );
      fs.writeFileSync(path.join(dir, "logged.ver"), "1\n");
      const holder = await heldRun("logged", ["--log", log]);
      expectFailure(await backup("logged", "src.img", ["--log", log]), 4, /in use by another run/);
      assert.match(lines().at(-1)!, /backup logged FAILED \(exit 4\): chain logged is in use by another run/);
      process.kill(holder.child.pid!, "SIGTERM");
      assert.equal((await holder.done).code, 143);
      assert.match(
        lines().at(-1)!,
        /backup logged INTERRUPTED by SIGTERM: nothing of this run was published/,
      );
    });

    it("fault: an empty source onto a chain with data is refused (--allow-shrink insists); size changes are warned", async () => {
      const images = await makeChain("empty", 1);
      const snap = dirSnapshot(dir);
      const log = path.join(dir, "empty.log");
      for (const source of ["/dev/null", "empty.img"]) {
        fs.writeFileSync(path.join(dir, "empty.img"), "");
        expectFailure(
          await backup("empty", source, ["--log", log]),
          1,
          /is empty \(0 bytes\), but generation 1 of empty holds 25 blocks: nothing was recorded .* --allow-shrink/,
        );
        assert.deepEqual(dirSnapshot(dir), {
          ...snap,
          ...pick(dirSnapshot(dir), ["empty.img", "empty.log"]),
        });
      }
      fs.appendFileSync(path.join(dir, "src.img"), pseudoRandom(BS, 8));
      images.push(fs.readFileSync(path.join(dir, "src.img")));
      const grown = await backup("empty", "src.img", ["--log", log]);
      ok(grown, "a grown source");
      assert.match(
        grown.stderr,
        /warning: the size of src\.img changed since generation 1: 98404 -> 102500 bytes/,
      );
      assert.match(fs.readFileSync(log, "utf8"), /warning: the size of src\.img changed/);
      ok(await backup("empty", "/dev/null", ["--allow-shrink"]), "--allow-shrink");
      images.push(Buffer.alloc(0));
      await restoresExactly("empty", images);
    });

    describe("crashes and I/O errors at every step of a commit (binary, strace)", {
      skip: (t.name !== "binary" || !straceAvailable()) && "needs the binary and strace",
    }, () => {
      const tracedCalls = (args: string[], calls: string[]) => straceSteps(t, { args, calls, cwd: dir });
      const COMMIT_CALLS = ["link", "unlink", "rename", "fsync"];
      const commitCalls = (name: string) =>
        tracedCalls(["backup", name, "src.img", "--block-size", String(BS)], COMMIT_CALLS);
      /** A run killed by strace's SIGKILL (strace then dies of the same signal). */
      const assertKilled = (r: RunResult, what: string) =>
        assert.ok(
          r.signal === "SIGKILL" || r.code === 137,
          `${what} did not kill the run: ${r.code} ${r.stderr}`,
        );

      it("fault: SIGKILL before each link, unlink, rename and fsync of a backup: the next run finishes or undoes it", async () => {
        await makeChain("probe", 1);
        const points = commitCalls("probe");
        assert.ok(points.length >= 12, `only ${points.length} commit steps traced`);
        for (const [i, point] of points.entries()) {
          const name = `kill${i}`;
          const images = await makeChain(name, 1, 20 + i);
          changeBlocks(path.join(dir, "src.img"), BS, 2, 2, 300 + i);
          const killedImage = fs.readFileSync(path.join(dir, "src.img"));
          const killed = await backup(name, "src.img", [], underStrace(t, { ...point, kill: true }));
          assertKilled(killed, `${point.syscall} #${point.when}`);
          const after = Number(ver(name));
          assert.ok(after === 1 || after === 2, `${point.syscall} #${point.when}: .ver ${after}`);
          // all of the killed run's files in place: a complete generation, which is never removed
          const complete = [`${name}.2`, `${name}.2.md5`, `${name}.2.json`].every((f) =>
            fs.existsSync(path.join(dir, f))
          );
          changeBlocks(path.join(dir, "src.img"), BS, 9, 1, 400 + i);
          const next = await backup(name);
          ok(next, `the run after a kill at ${point.syscall} #${point.when}`);
          const gens = Number(ver(name));
          if (complete) {
            assert.equal(gens, 3, `${point.syscall} #${point.when}: the complete generation 2 was undone`);
          }
          assert.ok(!listDir(dir).some((f) => f.startsWith(`${name}.`) && /\.tmp-|\.journal/.test(f)));
          // finished (the killed run's generation kept) or undone (the next run took its number)
          const expected = gens === 3 ? [...images, killedImage] : images;
          await restoresExactly(name, [...expected, fs.readFileSync(path.join(dir, "src.img"))]);
        }
      });

      it("fault: an I/O error at each step of a backup's commit: one line, exit 1, nothing half-published", async () => {
        await makeChain("eprobe", 1);
        for (const [i, point] of commitCalls("eprobe").entries()) {
          const name = `eio${i}`;
          const images = await makeChain(name, 1, 50 + i);
          changeBlocks(path.join(dir, "src.img"), BS, 4, 2, 500 + i);
          const attempted = fs.readFileSync(path.join(dir, "src.img"));
          const r = await backup(name, "src.img", [], underStrace(t, point));
          const published = Number(ver(name)) === 2;
          if (r.code === 0) {
            // an error the commit may ignore: unlinking a temporary name (left for the next run), the journal;
            // or writing the run's record at its start, which is a warning (monitor/monitored_run.ts)
            assert.ok(
              point.syscall === "unlink" ||
                /warning: the run.s start could not be recorded \(.*\.last-backup\.json: input\/output error/
                  .test(r.stderr),
              `EIO at ${point.syscall} #${point.when} went unnoticed`,
            );
            assert.ok(published);
          } else if (published && /was published, but .*\.last-backup\.json/.test(r.stderr)) {
            // writing the run's record after the commit (monitor/monitored_run.ts): the failure says it stands
            assert.equal(r.code, 1);
            assert.match(r.stderr.trim().split("\n").at(-1)!, /input\/output error$/);
          } else {
            expectFailure(r, 1, /input\/output error/);
            // the only failure after which the generation stands: syncing the directory after .ver's rename
            if (published) {
              assert.match(r.stderr, /eio\d+\.ver now says 2, but syncing directory .*may not survive/);
            } else assert.ok(!fs.existsSync(path.join(dir, `${name}.2`)), `${point.syscall} #${point.when}`);
          }
          ok(await backup(name), `the run after EIO at ${point.syscall} #${point.when}`);
          assert.ok(!listDir(dir).some((f) => f.startsWith(`${name}.`) && /\.tmp-|\.journal/.test(f)));
          await restoresExactly(name, [
            ...images,
            ...(published ? [attempted] : []),
            fs.readFileSync(path.join(dir, "src.img")),
          ]);
        }
      });

      it("fault: SIGKILL at each step of a repair: running it again finishes the job", async () => {
        await makeChain("rprobe", 3);
        fs.writeFileSync(path.join(dir, "rprobe.2"), "corrupt");
        const points = tracedCalls(["repair", "rprobe"], ["mkdir", "rename", "fsync"]);
        assert.ok(points.length >= 8, `only ${points.length} steps traced`);
        for (const [i, point] of points.entries()) {
          const name = `rk${i}`;
          const images = await makeChain(name, 3, 70 + i);
          fs.writeFileSync(path.join(dir, `${name}.2`), "corrupt");
          const killed = await run(underStrace(t, { ...point, kill: true }), ["repair", name], { cwd: dir });
          assertKilled(killed, `${point.syscall} #${point.when}`);
          ok(await inDir("repair", name), `repair again after a kill at ${point.syscall} #${point.when}`);
          assert.equal(ver(name), "1\n");
          ok(await backup(name), "backup after the repair");
          await restoresExactly(name, [images[0], fs.readFileSync(path.join(dir, "src.img"))]);
        }
      });
    });
  });
}

function devNull(): number {
  return fs.openSync("/dev/null", "w");
}

function pick(o: Record<string, string>, keys: string[]): Record<string, string> {
  return Object.fromEntries(keys.filter((k) => k in o).map((k) => [k, o[k]]));
}
