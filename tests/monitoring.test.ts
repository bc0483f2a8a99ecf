/**
 * Monitoring (README "status", SPEC §13): `status` exits 5 when a chain is stale, its last run failed, was
 * interrupted or died, or its last verify is too old, from the records every backup, prune and verify
 * writes next to the chain; `--metrics FILE` is a Prometheus text file `promtool` accepts, replaced whole at
 * the end of every run; the systemd units of README's recipe pass `systemd-analyze verify`.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import {
  changeBlocks,
  expectFailure,
  it,
  listDir,
  pseudoRandom,
  ROOT,
  run,
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
const UNHEALTHY = 5;
const hasPromtool = fs.existsSync("/usr/bin/promtool");
const hasSystemd = fs.existsSync("/usr/bin/systemd-analyze");

async function backup(t: Target, dir: string, name: string, extra: string[] = [], source = "src.img") {
  return await run(t, ["backup", name, source, "--block-size", String(BS), ...extra], { cwd: dir });
}

async function status(t: Target, dir: string, args: string[]) {
  const r = await run(t, ["status", ...args], { cwd: dir });
  return { ...r, out: r.stdout.toString() };
}

function record(dir: string, name: string, command = "backup") {
  return JSON.parse(fs.readFileSync(path.join(dir, `${name}.last-${command}.json`), "utf8"));
}

/** The samples of a metrics file: name -> value (one chain and command per file). */
function samples(file: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const l of fs.readFileSync(file, "utf8").split("\n")) {
    const m = /^(blockdiff_\w+)\{[^}]*\} (\S+)$/.exec(l);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

function promtool(file: string): void {
  const r = spawnSync("promtool", ["check", "metrics"], { input: fs.readFileSync(file) });
  assert.equal(r.status, 0, `promtool check metrics: ${r.stdout}${r.stderr}`);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), "", "promtool has remarks");
}

for (const t of targets()) {
  describe(`monitoring (${t.name})`, () => {
    let dir = "";
    before(() => dir = tempDir());
    after(() => fs.rmSync(dir, { recursive: true, force: true }));

    it("status: a fresh chain is OK (exit 0): its generation and age, its last backup, no verify yet", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 8, 1));
      assert.equal((await backup(t, dir, "fresh")).code, 0);
      const r = await status(t, dir, ["fresh"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, "");
      assert.match(
        r.out,
        /^fresh: OK: generation 1 finished \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ \(\d+s ago\); last backup succeeded \d+s ago; never verified\n$/,
      );
      const rec = record(dir, "fresh");
      assert.equal(rec.state, "succeeded");
      assert.equal(rec.exitCode, 0);
      assert.equal(fs.statSync(path.join(dir, "fresh.last-backup.json")).mode & 0o777, 0o600);
    });

    it("status: --json is one stable object per run, the chains with their problems and last runs", async () => {
      const r = await status(t, dir, ["fresh", "--json", "--max-age", "1d12h"]);
      assert.equal(r.code, 0, r.stderr);
      const j = JSON.parse(r.out);
      assert.deepEqual(Object.keys(j), [
        "ok",
        "exitCode",
        "checkedAt",
        "maxAgeSeconds",
        "maxVerifyAgeSeconds",
        "chains",
      ]);
      assert.equal(j.ok, true);
      assert.equal(j.maxAgeSeconds, 36 * 3600);
      assert.equal(j.maxVerifyAgeSeconds, null);
      const c = j.chains[0];
      assert.deepEqual(
        Object.keys(c),
        ["chain", "name", "dir", "status", "problems", "newestGeneration", "lastRuns", "lastVerify"],
      );
      assert.equal(c.status, "ok");
      assert.deepEqual(c.problems, []);
      assert.equal(c.newestGeneration.generation, 1);
      assert.equal(
        c.newestGeneration.finishedAt,
        JSON.parse(fs.readFileSync(path.join(dir, "fresh.1.json"), "utf8")).finishedAt,
      );
      assert.deepEqual(Object.keys(c.lastRuns), ["backup", "prune", "verify"]);
      assert.equal(c.lastRuns.backup.state, "succeeded");
      assert.equal(c.lastRuns.verify, null);
      assert.equal(c.lastVerify, null);
    });

    it("status: a newest generation older than --max-age is STALE (exit 5)", async () => {
      await new Promise((r) => setTimeout(r, 1100));
      const stale = await status(t, dir, ["fresh", "--max-age", "1s"]);
      assert.equal(stale.code, UNHEALTHY, stale.stderr);
      assert.match(stale.out, /^fresh: STALE: generation 1 is \d+s old, older than --max-age 1s; /);
      assert.equal((await status(t, dir, ["fresh", "--max-age", "90m"])).code, 0);
      const j = JSON.parse((await status(t, dir, ["fresh", "--max-age", "1s", "--json"])).out);
      assert.equal(j.exitCode, UNHEALTHY);
      assert.equal(j.chains[0].status, "stale");
    });

    it("status: a last backup that failed is FAILED (exit 5) with its exit code and error; a success clears it", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 8, 2));
      assert.equal((await backup(t, dir, "failing")).code, 0);
      const success = record(dir, "failing").lastSuccessAt;
      expectFailure(await backup(t, dir, "failing", [], "missing.img"), 1, /cannot open source missing\.img/);
      const r = await status(t, dir, ["failing"]);
      assert.equal(r.code, UNHEALTHY);
      assert.match(
        r.out,
        /^failing: FAILED: last backup FAILED \d+s ago \(exit 1\): cannot open source missing\.img: no such file or directory; generation 1 finished /,
      );
      const rec = record(dir, "failing");
      assert.equal(rec.state, "failed");
      assert.equal(rec.lastSuccessAt, success, "the last success is kept");
      assert.equal((await backup(t, dir, "failing")).code, 0);
      assert.equal((await status(t, dir, ["failing"])).code, 0);
    });

    it("fault: a backup SIGKILLed mid-run DIED (exit 5); while it ran it was RUNNING (exit 0); SIGTERM: INTERRUPTED", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 8, 3));
      assert.equal((await backup(t, dir, "killed")).code, 0);
      for (const signal of ["SIGKILL", "SIGTERM"] as const) {
        const fifo = path.join(dir, "killed.fifo");
        execFileSync("mkfifo", [fifo]);
        const p = start(t, ["backup", "killed", fifo, "--block-size", String(BS)], { cwd: dir });
        try {
          await waitUntil(() => record(dir, "killed").pid === p.child.pid, "the run's record");
          await waitUntil(
            () => fs.readFileSync(path.join(dir, "killed.lock"), "utf8") !== "",
            "the run to hold its lock",
          );
          const running = await status(t, dir, ["killed"]);
          assert.equal(running.code, 0, running.out);
          assert.match(
            running.out,
            new RegExp(`^killed: RUNNING: .*backup running since \\d+s ago \\(pid ${p.child.pid}`),
          );
          // a second run, refused because this one holds the lock, leaves this one's record alone
          const refused = await run(t, ["backup", "killed", "src.img", "--block-size", String(BS)], {
            cwd: dir,
          });
          assert.equal(refused.code, 4, refused.stderr);
          assert.equal(record(dir, "killed").pid, p.child.pid);
          assert.equal(record(dir, "killed").state, "running");
        } finally {
          process.kill(p.child.pid!, signal); // waiting in open(2) for a writer of the FIFO
        }
        const r = await p.done;
        fs.rmSync(fifo);
        const s = await status(t, dir, ["killed"]);
        assert.equal(s.code, UNHEALTHY, s.out);
        if (signal === "SIGKILL") {
          assert.equal(r.signal, "SIGKILL");
          assert.equal(record(dir, "killed").state, "running", "a killed run cannot write its outcome");
          assert.match(
            s.out,
            new RegExp(
              `^killed: DIED: backup \\(pid ${p.child.pid}\\) started \\d+s ago died without an outcome`,
            ),
          );
          assert.equal(
            JSON.parse((await status(t, dir, ["killed", "--json"])).out).chains[0].lastRuns.backup.state,
            "died",
          );
        } else {
          assert.equal(r.code, 143);
          assert.match(
            s.out,
            /^killed: FAILED: last backup was INTERRUPTED \d+s ago \(exit 143\): interrupted by SIGTERM; /,
          );
        }
      }
    });

    it("status: --max-verify-age: never verified or too long ago fails (exit 5), a verify passes it, a failed verify is FAILED", async () => {
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 8, 4));
      assert.equal((await backup(t, dir, "verified")).code, 0);
      changeBlocks(path.join(dir, "src.img"), BS, 2, 2, 5);
      assert.equal((await backup(t, dir, "verified")).code, 0);
      const never = await status(t, dir, ["verified", "--max-verify-age", "8d"]);
      assert.equal(never.code, UNHEALTHY);
      assert.match(
        never.out,
        /^verified: VERIFY-STALE: never verified successfully \(--max-verify-age 8d\); /,
      );
      assert.equal((await run(t, ["verify", "verified"], { cwd: dir })).code, 0);
      const ok = await status(t, dir, ["verified", "--max-verify-age", "8d"]);
      assert.equal(ok.code, 0, ok.out);
      assert.match(ok.out, /; last verify OK \d+s ago\n$/);
      await new Promise((r) => setTimeout(r, 1100));
      const old = await status(t, dir, ["verified", "--max-verify-age", "1s"]);
      assert.equal(old.code, UNHEALTHY);
      assert.match(old.out, /last successful verify \d+s ago, older than --max-verify-age 1s/);
      const diff = path.join(dir, "verified.2");
      const good = fs.readFileSync(diff);
      fs.writeFileSync(diff, good.subarray(0, good.length - 100));
      assert.equal((await run(t, ["verify", "verified"], { cwd: dir })).code, 3);
      const bad = await status(t, dir, ["verified"]);
      assert.equal(bad.code, UNHEALTHY);
      assert.match(
        bad.out,
        /^verified: FAILED: last verify FAILED \d+s ago \(exit 3\): verified: 1 of 2 generations failed verification \(first: 2\)/,
      );
      fs.writeFileSync(diff, good);
    });

    it("status DIR: one line per chain, the worst decides; a --monthly chain is its base name", async () => {
      const d = path.join(dir, "many");
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, "src.img"), pseudoRandom(BS * 4, 6));
      for (const n of ["a", "b"]) assert.equal((await backup(t, d, n)).code, 0);
      assert.equal((await backup(t, d, "m", ["--monthly"])).code, 0);
      const ok = await status(t, d, ["."]);
      assert.equal(ok.code, 0, ok.out);
      assert.deepEqual(ok.out.split("\n").filter(Boolean).map((l) => l.split(":")[0]), ["a", "b", "m"]);
      assert.match(ok.out, /^m: OK: generation 1 finished /m);
      assert.equal((await status(t, d, ["m"])).code, 0, "the base name of --monthly chains");
      expectFailure(await backup(t, d, "b", [], "missing.img"), 1, /cannot open source/);
      const bad = await status(t, d, ["."]);
      assert.equal(bad.code, UNHEALTHY);
      assert.match(bad.out, /^a: OK: .*\nb: FAILED: .*\nm: OK: .*\n$/);
      // an older month's chain is not checked: only the newest month, under the base name
      const month = listDir(d).find((f) => /^m-\d{6}\.ver$/.test(f))!.slice(0, -4);
      for (const suffix of [".1", ".1.md5", ".1.json", ".ver"]) {
        fs.copyFileSync(path.join(d, month + suffix), path.join(d, `m-202001${suffix}`));
      }
      assert.match((await status(t, d, ["."])).out, /^a: .*\nb: .*\nm: OK: .*\n$/);
      fs.renameSync(path.join(d, "m.last-backup.json"), path.join(d, "m.last-backup.json.away"));
      assert.match((await status(t, d, ["."])).out, new RegExp(`^a: .*\\nb: .*\\n${month}: OK: .*\\n$`));
      fs.renameSync(path.join(d, "m.last-backup.json.away"), path.join(d, "m.last-backup.json"));
      const j = JSON.parse((await status(t, d, [".", "--json"])).out);
      assert.deepEqual(j.chains.map((c: { name: string; status: string }) => [c.name, c.status]), [
        ["a", "ok"],
        ["b", "failed"],
        ["m", "ok"],
      ]);
    });

    it("fault: status of no chain, an empty DIR, bad durations: one line, exit 1 or 2", async () => {
      expectFailure(
        await status(t, dir, ["nosuch"]),
        1,
        /^blockdiff: no backup chain nosuch \(no nosuch\.ver and no record of a run\)$/,
      );
      const empty = path.join(dir, "empty");
      fs.mkdirSync(empty);
      expectFailure(await status(t, dir, ["empty"]), 1, /^blockdiff: no backup chains in empty$/);
      for (const bad of ["26", "0h", "1.5h", "1h1d", "3x", "-1d", ""]) {
        expectFailure(
          await status(t, dir, ["fresh", "--max-age", bad]),
          2,
          new RegExp(`^blockdiff: --max-age '${bad.replace(".", "\\.")}' is not a duration`),
        );
      }
      expectFailure(
        await status(t, dir, ["fresh", "--max-verify-age", "8"]),
        2,
        /--max-verify-age '8' is not a duration/,
      );
      expectFailure(await status(t, dir, []), 2, /^blockdiff: usage: blockdiff status NAME\|DIR/);
      const ver = path.join(dir, "fresh.ver");
      fs.writeFileSync(ver, "garbage\n");
      const broken = await status(t, dir, ["fresh"]);
      assert.equal(broken.code, UNHEALTHY);
      assert.match(broken.out, /^fresh: BROKEN: .*fresh\.ver/);
      fs.writeFileSync(ver, "1\n");
      // a failed first backup, a verify or prune of a chain that does not exist leave no record behind
      expectFailure(await backup(t, dir, "nosuch", [], "missing.img"), 1, /cannot open source/);
      expectFailure(await status(t, dir, ["nosuch"]), 1, /^blockdiff: no backup chain nosuch /);
      assert.equal((await run(t, ["verify", "nosuch"], { cwd: dir })).code, 1);
      assert.equal((await run(t, ["prune", "nosuch", "--keep-last", "1"], { cwd: dir })).code, 1);
      assert.ok(!listDir(dir).some((f) => f.startsWith("nosuch.last-")));
    });

    it("status --help has examples; blockdiff --help lists status and exit code 5; verify's usage has --json", async () => {
      const h = (await run(t, ["status", "--help"])).stdout.toString();
      assert.match(
        h,
        /^usage: blockdiff status NAME\|DIR\S* \[--max-age AGE\] \[--max-verify-age AGE\] \[--json\]/,
      );
      assert.match(h, /examples:\n {2}blockdiff status \/backup\/db\n/);
      const main = (await run(t, ["--help"])).stdout.toString();
      assert.match(main, /\n {2}status +for monitoring/);
      assert.match(main, /5 \(status\) a chain is stale or its last run failed/);
      assert.match(
        (await run(t, ["verify", "--help"])).stdout.toString(),
        /^usage: blockdiff verify NAME\S* .*\[--json\]/,
      );
    });

    it("--metrics: promtool accepts the file; its values are the run's; a failure keeps the last success", {
      skip: !hasPromtool && "needs promtool (Debian package prometheus)",
    }, async () => {
      const prom = path.join(dir, "db.prom");
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 20 + 7, 7));
      assert.equal((await backup(t, dir, "db", ["--metrics", prom])).code, 0);
      changeBlocks(path.join(dir, "src.img"), BS, 3, 4, 8);
      const before = Date.now() / 1000;
      assert.equal((await backup(t, dir, "db", ["--metrics", prom, "--compress", "gzip"])).code, 0);
      promtool(prom);
      const text = fs.readFileSync(prom, "utf8");
      assert.match(
        text,
        /# HELP blockdiff_last_run_exit_code .+\n# TYPE blockdiff_last_run_exit_code gauge\n/,
      );
      assert.match(
        text,
        new RegExp(`blockdiff_last_run_exit_code\\{chain="db",dir="${dir}",command="backup"\\} 0\\n`),
      );
      assert.equal(fs.statSync(prom).mode & 0o777, 0o644);
      const m = samples(prom);
      assert.equal(m.get("blockdiff_last_run_exit_code"), 0);
      assert.equal(m.get("blockdiff_last_run_read_bytes"), BS * 20 + 7);
      assert.equal(m.get("blockdiff_last_run_written_bytes"), fs.statSync(path.join(dir, "db.2.gz")).size);
      assert.equal(m.get("blockdiff_last_run_changed_blocks"), 4);
      assert.equal(m.get("blockdiff_newest_generation"), 2);
      const finished = m.get("blockdiff_last_run_timestamp_seconds")!;
      assert.ok(finished >= before && finished <= Date.now() / 1000, `${finished}`);
      assert.equal(m.get("blockdiff_last_success_timestamp_seconds"), finished);
      assert.ok(m.get("blockdiff_last_run_duration_seconds")! >= 0);

      expectFailure(await backup(t, dir, "db", ["--metrics", prom], "missing.img"), 1, /cannot open source/);
      promtool(prom);
      const f = samples(prom);
      assert.equal(f.get("blockdiff_last_run_exit_code"), 1);
      assert.equal(f.get("blockdiff_last_success_timestamp_seconds"), finished, "the last success is kept");
      assert.ok(f.get("blockdiff_last_run_timestamp_seconds")! > finished);
      assert.equal(f.get("blockdiff_newest_generation"), 2);
      assert.equal(f.get("blockdiff_last_run_written_bytes"), undefined, "a failed run wrote nothing");

      const vprom = path.join(dir, "db-verify.prom");
      assert.equal((await run(t, ["verify", "db", "--metrics", vprom], { cwd: dir })).code, 0);
      promtool(vprom);
      assert.match(
        fs.readFileSync(vprom, "utf8"),
        /blockdiff_last_run_exit_code\{chain="db",dir="[^"]+",command="verify"\} 0\n/,
      );
      const pprom = path.join(dir, "db-prune.prom");
      assert.equal(
        (await run(t, ["prune", "db", "--keep-last", "1", "--metrics", pprom], { cwd: dir })).code,
        0,
      );
      promtool(pprom);
      assert.equal(samples(pprom).get("blockdiff_newest_generation"), 2);
      assert.equal(record(dir, "db", "prune").state, "succeeded");
      // label values escaped: a chain named with a double quote and a backslash
      const odd = 'q"b\\s';
      assert.equal((await backup(t, dir, odd, ["--metrics", "odd.prom"])).code, 0);
      promtool(path.join(dir, "odd.prom"));
      assert.match(fs.readFileSync(path.join(dir, "odd.prom"), "utf8"), /\{chain="q\\"b\\\\s",dir=/);
      expectFailure(
        await backup(t, dir, "db", ["--metrics", path.join(dir, "nodir", "x.prom")]),
        1,
        /--metrics .*x\.prom: directory .*nodir does not exist/,
      );
    });

    it("fault: --metrics is replaced whole: a reader looping during runs never sees part of it", async () => {
      const prom = path.join(dir, "atomic.prom");
      fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 64, 9));
      let reads = 0, done = false;
      const reader = (async () => {
        while (!done) {
          let text: string | null = null;
          try {
            text = fs.readFileSync(prom, "utf8");
          } catch { /* not there yet */ }
          if (text !== null) {
            reads++;
            assert.match(text, /\nblockdiff_newest_generation\{[^}]*\} \d+\n$/, `a partial file:\n${text}`);
          }
          await new Promise((r) => setImmediate(r));
        }
      })();
      try {
        for (let i = 0; i < 6; i++) {
          changeBlocks(path.join(dir, "src.img"), BS, i, 1, 10 + i);
          assert.equal((await backup(t, dir, "atomic", ["--metrics", prom])).code, 0);
        }
      } finally {
        done = true;
      }
      await reader;
      assert.ok(reads > 10, `only ${reads} reads`);
    });

    it(
      "fault: SIGKILL at the rename of --metrics leaves the old file whole; the next run removes the temporary one",
      {
        skip: !straceAvailable() && "needs strace",
      },
      async () => {
        const prom = path.join(dir, "atomic.prom");
        const old = fs.readFileSync(prom, "utf8");
        const args = ["backup", "atomic", "src.img", "--metrics", prom];
        const steps = straceSteps(t, { args, calls: ["rename"], cwd: dir });
        assert.ok(steps.length > 0, "no rename(2) seen");
        const last = steps.at(-1)!; // the metrics file is put in place last
        fs.writeFileSync(prom, old);
        changeBlocks(path.join(dir, "src.img"), BS, 9, 1, 30);
        const r = await run(underStrace(t, { ...last, kill: true }), args, { cwd: dir });
        assert.ok(r.signal === "SIGKILL" || r.code === 137, `not killed: ${r.code} ${r.stderr}`);
        assert.equal(fs.readFileSync(prom, "utf8"), old, "the old metrics file changed");
        const temp = listDir(dir).find((f) => f.startsWith("atomic.prom.tmp-"));
        assert.ok(temp, "no complete temporary file was about to replace it");
        assert.match(
          fs.readFileSync(path.join(dir, temp), "utf8"),
          /\nblockdiff_newest_generation\{[^}]*\} 8\n$/, // the 6 above, the 7th by straceSteps
        );
        // the next run removes what the killed one left, and its own record says so
        assert.equal((await backup(t, dir, "atomic", ["--metrics", prom])).code, 0);
        assert.deepEqual(listDir(dir).filter((f) => f.includes(".tmp-")), []);
        assert.equal(samples(prom).get("blockdiff_newest_generation"), 9);
      },
    );

    it(
      "fault: an I/O error writing the record: a warning at the start, a failure saying it was published at the end; never a verify's",
      {
        skip: !straceAvailable() && "needs strace",
      },
      async () => {
        fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(BS * 8, 12));
        assert.equal((await backup(t, dir, "eio")).code, 0);
        const args = ["backup", "eio", "src.img", "--block-size", String(BS)];
        const renames = straceSteps(t, { args, calls: ["rename"], cwd: dir });
        assert.ok(renames.length >= 3, `only ${renames.length} renames`);
        const atStart = await run(underStrace(t, renames[0]), args, { cwd: dir });
        assert.equal(atStart.code, 0, atStart.stderr);
        assert.match(
          atStart.stderr,
          /^blockdiff: warning: the run's start could not be recorded \(writing eio\.last-backup\.json: input\/output error\); its end was$/m,
        );
        assert.equal(fs.readFileSync(path.join(dir, "eio.ver"), "utf8"), "3\n", "the backup went on");
        assert.equal(record(dir, "eio").state, "succeeded", "the end wrote the record");
        const atEnd = await run(underStrace(t, renames.at(-1)!), args, { cwd: dir });
        // the backup's summary line, then the failure's
        assert.equal(atEnd.code, 1);
        assert.match(atEnd.stderr, /^blockdiff: eio\.4 incremental: .*\n/);
        assert.equal(
          atEnd.stderr.trim().split("\n").at(-1),
          "blockdiff: generation 4 of eio was published, but writing eio.last-backup.json: input/output error",
        );
        assert.equal(fs.readFileSync(path.join(dir, "eio.ver"), "utf8"), "4\n");
        const vargs = ["verify", "eio"];
        const vrenames = straceSteps(t, { args: vargs, calls: ["rename"], cwd: dir });
        for (const step of vrenames) {
          const v = await run(underStrace(t, step), vargs, { cwd: dir });
          assert.equal(v.code, 0, `verify with EIO at rename #${step.when}: ${v.stderr}`);
          assert.equal(v.stderr, "");
        }
      },
    );

    it("the records leave the chain alone: list, prune, repair and the original's file names; restore refuses them", async () => {
      const d = path.join(dir, "files");
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, "src.img"), pseudoRandom(BS * 6, 11));
      for (let i = 0; i < 3; i++) {
        changeBlocks(path.join(d, "src.img"), BS, i, 1, 20 + i);
        assert.equal((await backup(t, d, "c")).code, 0);
      }
      assert.equal((await run(t, ["verify", "c"], { cwd: d })).code, 0);
      assert.equal((await run(t, ["prune", "c", "--keep-last", "2"], { cwd: d })).code, 0);
      for (const c of ["backup", "prune", "verify"]) {
        assert.ok(fs.existsSync(path.join(d, `c.last-${c}.json`)));
      }
      const list = await run(t, ["list", "."], { cwd: d });
      assert.equal(list.code, 0, list.stderr);
      assert.deepEqual(list.stdout.toString().split("\n").filter(Boolean).map((l) => l.split(/\s+/)[0]), [
        "CHAIN",
        "c",
      ]);
      const repair = await run(t, ["repair", "c", "--dry-run"], { cwd: d });
      assert.equal(repair.code, 0, repair.stderr);
      assert.equal((await run(t, ["restore", "c", "out.img"], { cwd: d })).code, 0);
      assert.ok(fs.readFileSync(path.join(d, "out.img")).equals(fs.readFileSync(path.join(d, "src.img"))));
      expectFailure(
        await run(t, ["restore", "c", "c.last-backup.json", "--force"], { cwd: d }),
        2,
        /c\.last-backup\.json/,
      );
      assert.deepEqual(
        listDir(d).filter((f) => /^c\.\d+$/.test(f) || /^c\.\d+\.md5$/.test(f) || f === "c.ver"),
        ["c.2", "c.2.md5", "c.3", "c.3.md5", "c.ver"],
      );
    });

    it("README's systemd units pass systemd-analyze verify, and their blockdiff command lines parse", {
      skip: !hasSystemd && "needs systemd-analyze (Debian package systemd)",
    }, () => {
      const units = new Map<string, string[]>();
      let current: string[] | null = null;
      for (const l of fs.readFileSync(path.join(ROOT, "README.md"), "utf8").split("\n")) {
        const m = /^ {4}# \/etc\/systemd\/system\/(\S+)$/.exec(l);
        if (m) units.set(m[1], current = []);
        else if (current && l.startsWith("    ")) current.push(l.slice(4));
        else current = null;
      }
      assert.deepEqual([...units.keys()].sort(), ["blockdiff-db.service", "blockdiff-db.timer"]);
      const d = path.join(dir, "systemd");
      fs.mkdirSync(d);
      const wrapper = path.join(d, "blockdiff");
      fs.writeFileSync(wrapper, `#!/bin/sh\nexec ${t.cmd.map((c) => `'${c}'`).join(" ")} "$@"\n`, {
        mode: 0o755,
      });
      for (const [name, lines] of units) {
        fs.writeFileSync(
          path.join(d, name),
          lines.join("\n").replaceAll("/usr/local/bin/blockdiff", wrapper) + "\n",
        );
      }
      const r = spawnSync("systemd-analyze", ["verify", ...[...units.keys()].map((u) => path.join(d, u))], {
        encoding: "utf8",
      });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stderr.split("\n").filter((l) => l.includes(d)).join("\n"), "", "remarks on the units");
      const exec = units.get("blockdiff-db.service")!.find((l) => l.startsWith("ExecStart="))!;
      const words = exec.slice("ExecStart=".length).split(" ");
      assert.equal(words[0], "/usr/local/bin/blockdiff");
      const parsed = spawnSync(wrapper, [...words.slice(1), "--help"], { encoding: "utf8" });
      assert.equal(parsed.status, 0, `${exec}: ${parsed.stderr}`);
      assert.match(units.get("blockdiff-db.timer")!.join("\n"), /RandomizedDelaySec=.*\nPersistent=true/);
      const check = /`(blockdiff status [^`]+)`/.exec(fs.readFileSync(path.join(ROOT, "README.md"), "utf8"))!;
      assert.ok(check, "README shows a status check");
      const words2 = check[1].split(" ");
      assert.equal(spawnSync(wrapper, [...words2.slice(1), "--help"]).status, 0, check[1]);
    });
  });
}
