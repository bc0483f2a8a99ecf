/**
 * Hot backups of a MariaDB volume: a server in the UML guest under continuous writes is
 * backed up three times over SSH (--lvm-snapshot --mysql-lock); each restored generation is loop-mounted
 * here, a second mariadbd recovers it, CHECK TABLE passes, and it holds exactly the transactions committed
 * before that generation's lock (its GTID is the one read under the lock, and the row count matches it).
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import {
  BINARY,
  expectFailure,
  it,
  run,
  start,
  type Target,
  targets,
  tempDir,
  waitUntil,
} from "./helpers.ts";
import { GUEST_SOCKET, type GuestDb, SERVER_OPTIONS, startGuestDb } from "./guest_mariadb.ts";
import { PASSWORD, serveDatadir, USER } from "./mariadb.ts";
import { GUEST, type Guest, startGuest, umlAvailable, VG } from "./uml.ts";

describe(
  "hot MySQL backups of an LVM volume in a UML guest",
  { skip: !umlAvailable() && !process.env.CI && "needs root and UML" },
  () => {
    let guest: Guest;
    let db: GuestDb;
    let dir = "";
    let baseline = 0;
    before(async () => {
      guest = await startGuest();
      dir = tempDir();
      guest.sh(`lvcreate -q -y -L 96M -n db ${VG}`);
      db = await startGuestDb(guest, `/dev/${VG}/db`, "/run/bddb");
      baseline = db.gtidSeq();
      fs.writeFileSync(path.join(dir, "pw"), PASSWORD + "\n", { mode: 0o600 });
    });
    after(async () => {
      db?.stop();
      await guest?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    const t: Target = (() => {
      const b = targets().find((x) => x.name === "binary") ?? targets()[0];
      return { name: b.name, cmd: ["ip", "netns", "exec", `bdtest${process.pid}`, ...b.cmd] };
    })();
    const hotArgs = (name: string, extra: string[] = []) => [
      "backup",
      name,
      `root@${GUEST}:/dev/${VG}/db`,
      "-i",
      guest.clientKey,
      "--known-hosts",
      path.join(dir, "kh"),
      "--accept-new-host-key",
      "--lvm-snapshot=32M",
      "--compress",
      "zstd",
      "--mysql-lock",
      "--mysql-socket",
      GUEST_SOCKET,
      "--mysql-user",
      USER,
      "--password-file",
      path.join(dir, "pw"),
      "--json",
      ...extra,
    ];
    const hotBackup = (name: string, extra: string[] = []) => run(t, hotArgs(name, extra), { cwd: dir });
    /** LVCREATE_PREFIX that makes lvcreate take `seconds` longer: the lock is held meanwhile. */
    const slowLvcreate = (seconds: number) => {
      const p = path.join(dir, `slow-lvcreate-${seconds}`);
      fs.writeFileSync(p, `#!/bin/sh\nsleep ${seconds}\nexec "$@"\n`, { mode: 0o755 });
      return { LVCREATE_PREFIX: p };
    };
    /** Whether a write from another session gets through within a second. */
    const canWrite = () => {
      try {
        db.sql("SET SESSION lock_wait_timeout = 1; INSERT INTO app.t (v) VALUES (3)");
        return true;
      } catch {
        return false;
      }
    };
    /** Waits until writes block (the lock is held); if the run ends first, fails with the run's own words. */
    const lockTaken = async (p: { done: Promise<{ code: number | null; stderr: string }> }) => {
      const ended = p.done.then((r) => {
        throw new Error(`the run ended (exit ${r.code}) before the lock was seen: ${r.stderr}`);
      });
      ended.catch(() => {});
      await Promise.race([waitUntil(() => !canWrite(), "the lock to be taken", 20000, 100), ended]);
    };
    /** The server's count of clients that went away without closing their connection. */
    const abortedClients = () => Number(db.sql("SHOW GLOBAL STATUS LIKE 'Aborted_clients'").split(/\s+/)[1]);
    const snapshots = () =>
      guest.sh(`lvs --noheadings -o lv_name ${VG}`).split("\n").filter((s) => /bdsnap/.test(s));

    it("three hot generations under continuous writes each restore to a consistent database", async () => {
      db.startWriter();
      const gtids: string[] = [];
      const aborted = abortedClients();
      try {
        for (let g = 1; g <= 3; g++) {
          await new Promise((r) => setTimeout(r, 1500)); // rows keep coming in between generations
          const r = await hotBackup("hot");
          assert.equal(r.code, 0, r.stderr);
          const m = JSON.parse(r.stdout.toString()).manifest;
          assert.equal(m.generation, g);
          assert.match(m.mysql.gtid, /^0-1-\d+$/);
          assert.match(m.mysql.binlogFile, /^binlog\.\d+$/);
          assert.ok(m.mysql.lockHeldMs < 15000, `lock held ${m.mysql.lockHeldMs} ms`);
          assert.match(r.stderr, /held the MySQL lock for \d+ ms; binlog binlog\.\d+:\d+; GTID 0-1-\d+/);
          gtids.push(m.mysql.gtid);
        }
        // (read before the writer stops: killing its client counts as one)
        assert.equal(
          abortedClients(),
          aborted,
          "a lock connection was dropped, not closed (Aborted_clients)",
        );
      } finally {
        db.stopWriter();
      }
      assert.deepEqual(snapshots(), [], "snapshot left behind");
      const seqs = gtids.map((g) => Number(g.split("-")[2]));
      assert.ok(seqs[0] > baseline && seqs[1] > seqs[0] && seqs[2] > seqs[1], `GTIDs ${gtids} not advancing`);
      for (let g = 1; g <= 3; g++) await assertConsistent("hot", g, gtids[g - 1]);
    });

    /** Restores generation g, and checks the database in it against the GTID read under its lock. */
    const assertConsistent = async (name: string, g: number, gtid: string) => {
      const img = path.join(dir, `${name}-${g}.img`);
      const r = await run(t, ["restore", name, img, "-g", String(g)], { cwd: dir });
      assert.equal(r.code, 0, r.stderr);
      const state = await inspectRestored(img, path.join(dir, `mnt-${name}-${g}`));
      assert.equal(state.check, "OK", `${name}.${g}: CHECK TABLE`);
      assert.equal(state.gtid, gtid, `${name}.${g}: recovered GTID differs from the one read under the lock`);
      const rows = Number(gtid.split("-")[2]) - baseline; // one autocommit INSERT per transaction since then
      assert.equal(state.rows, rows, `${name}.${g}: rows`);
      assert.equal(state.maxId, rows, `${name}.${g}: ids are not 1..${rows}`);
      fs.rmSync(img);
    };

    it("(local) the same on the database host itself: blockdiff backup /dev/VG/LV --lvm-snapshot --mysql-lock", async () => {
      db.startWriter();
      let out: string;
      try {
        await new Promise((r) => setTimeout(r, 1000));
        out = guest.sh(
          `cd ${dir} && ${BINARY} backup local /dev/${VG}/db --lvm-snapshot=32M --mysql-lock ` +
            `--mysql-socket ${GUEST_SOCKET} --mysql-user ${USER} --password-file pw --json 2>local.err`,
        );
      } finally {
        db.stopWriter();
      }
      const m = JSON.parse(out).manifest;
      assert.deepEqual(snapshots(), [], "snapshot left behind");
      assert.match(fs.readFileSync(path.join(dir, "local.err"), "utf8"), /held the MySQL lock for \d+ ms/);
      await assertConsistent("local", 1, m.mysql.gtid);
    });

    it("fault: behind a long-running write the lock attempt gives up, writes go on, no snapshot is left", async () => {
      const ver = fs.readFileSync(path.join(dir, "hot.ver"), "utf8");
      const stopLong = db.background("UPDATE app.slow SET i = i + SLEEP(30)");
      try {
        await new Promise((r) => setTimeout(r, 1000));
        const r = await hotBackup("hot", ["--lock-wait-timeout", "1", "--lock-retries", "0"]);
        expectFailure(r, 1, /FLUSH TABLES WITH READ LOCK not granted within 1s in 1 attempts/);
        const w0 = Date.now();
        db.sql("SET SESSION lock_wait_timeout = 5; INSERT INTO app.t (v) VALUES (2)");
        assert.ok(Date.now() - w0 < 3000, "a write was held up after the lock attempt gave up");
      } finally {
        stopLong();
      }
      assert.deepEqual(snapshots(), []);
      assert.equal(fs.readFileSync(path.join(dir, "hot.ver"), "utf8"), ver, ".ver changed");
    });

    it("fault: SIGTERM while the lock is held (slow lvcreate) releases it at once; no snapshot is left", async () => {
      const ver = fs.readFileSync(path.join(dir, "hot.ver"), "utf8");
      const p = start(t, hotArgs("hot"), { cwd: dir, env: slowLvcreate(5) });
      await lockTaken(p);
      process.kill(p.child.pid!, "SIGTERM");
      const r = await p.done;
      assert.equal(r.code, 143, r.stderr);
      assert.ok(canWrite(), "writes still blocked after the controller was stopped");
      await new Promise((r) => setTimeout(r, 6000)); // the in-flight lvcreate ends; its snapshot must go too
      await waitUntil(() => snapshots().length === 0, "the snapshot to be removed", 20000, 500);
      assert.equal(fs.readFileSync(path.join(dir, "hot.ver"), "utf8"), ver, ".ver changed");
    });

    it("fault: an lvcreate slower than --lock-max-hold: the lock is dropped, writes go on, the run fails", async () => {
      const ver = fs.readFileSync(path.join(dir, "hot.ver"), "utf8");
      const p = start(t, hotArgs("hot", ["--lock-max-hold", "3"]), { cwd: dir, env: slowLvcreate(8) });
      await lockTaken(p);
      const locked = Date.now();
      await waitUntil(canWrite, "writes to resume", 10000, 100);
      const resumedAfter = Date.now() - locked;
      assert.ok(resumedAfter < 5500, `writes resumed after ${resumedAfter} ms`);
      expectFailure(await p.done, 1, /the lock was dropped after 3s so that writes could go on/);
      await waitUntil(() => snapshots().length === 0, "the snapshot to be removed", 20000, 500);
      assert.equal(fs.readFileSync(path.join(dir, "hot.ver"), "utf8"), ver, ".ver changed");
    });

    it("security: no password in the argv of any process, here or in the guest, during a hot backup", async () => {
      const scan = scanArgv(guest, PASSWORD);
      let r;
      try {
        r = await hotBackup("scan");
      } finally {
        const seen = await scan.stop();
        assert.deepEqual(
          seen,
          ["host: control", "guest: control"],
          "the password showed in a process's argv",
        );
      }
      assert.equal(r.code, 0, r.stderr);
    });

    it("fault: a wrong password fails with one clear line before any snapshot", async () => {
      const bad = path.join(dir, "badpw");
      fs.writeFileSync(bad, "wrong\n", { mode: 0o600 });
      const r = await hotBackup("hot", ["--password-file", bad]);
      expectFailure(
        r,
        1,
        /MySQL at \/run\/bdmy\.sock \(through ssh root@10\.201\.0\.2\): access denied for user bk/,
      );
      assert.deepEqual(snapshots(), []);
    });
  },
);

/**
 * Watches every process's argv, here and in the guest, for `secret` until stop(); a control process with the
 * secret in its argv is started on each side first, so a scanner that sees nothing cannot pass.
 */
function scanArgv(guest: Guest, secret: string): { stop(): Promise<string[]> } {
  const seen = new Set<string>();
  const control = spawn("sh", ["-c", "sleep 5; :", "control", secret], { stdio: "ignore" });
  const timer = setInterval(() => {
    for (const pid of fs.readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
      let argv: string;
      try {
        argv = fs.readFileSync(`/proc/${pid}/cmdline`, "latin1");
      } catch {
        continue;
      }
      if (argv.includes(secret)) seen.add(argv.includes("\0control\0") ? "host: control" : `host: ${argv}`);
    }
  }, 20);
  const d = guest.dir;
  fs.writeFileSync(path.join(d, "secret"), secret);
  fs.writeFileSync(
    path.join(d, "scan.sh"),
    `while [ -e /run/bdscan.on ]; do\n` +
      `  for f in $(grep -l -F -f ${d}/secret /proc/[0-9]*/cmdline 2>/dev/null); do tr '\\0' ' ' < "$f"; echo; done\n` +
      `  sleep 0.05\ndone >> /run/bdscan.hits\n`,
  );
  guest.sh(
    `rm -f /run/bdscan.hits; touch /run/bdscan.on; setsid sh ${d}/scan.sh </dev/null >/dev/null 2>&1 & ` +
      `sleep 0.3; setsid sh -c 'sleep 1; :' guestcontrol "$(cat ${d}/secret)" </dev/null >/dev/null 2>&1 &`,
  );
  return {
    async stop() {
      await new Promise((r) => setTimeout(r, 200));
      clearInterval(timer);
      control.kill();
      const hits = guest.sh("rm -f /run/bdscan.on; sleep 0.3; sort -u /run/bdscan.hits");
      for (const line of hits.split("\n").filter(Boolean)) {
        seen.add(line.includes(" guestcontrol ") ? "guest: control" : `guest: ${line}`);
      }
      return [...seen];
    },
  };
}

/** Loop-mounts a restored image here, starts a second mariadbd on it and reads its state. */
async function inspectRestored(
  img: string,
  mnt: string,
): Promise<{ check: string; gtid: string; rows: number; maxId: number }> {
  fs.mkdirSync(mnt);
  execFileSync("mount", ["-o", "loop", img, mnt]);
  try {
    const server = await serveDatadir(path.join(mnt, "data"), `${mnt}.sock`, SERVER_OPTIONS);
    try {
      const check = server.sql("CHECK TABLE app.t").trim().split("\t").at(-1)!;
      const gtid = server.sql("SELECT @@GLOBAL.gtid_binlog_pos").trim();
      const [rows, maxId] = server.sql("SELECT COUNT(*), IFNULL(MAX(id), 0) FROM app.t").trim().split("\t")
        .map(
          Number,
        );
      return { check, gtid, rows, maxId };
    } finally {
      await server.stop();
    }
  } finally {
    execFileSync("umount", [mnt]);
  }
}
