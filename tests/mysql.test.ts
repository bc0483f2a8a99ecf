/** `blockdiff mysqllock` against a real MariaDB server. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import { expectFailure, it, run, start, targets, tempDir } from "./helpers.ts";
import { type MariaDb, mariadbAvailable, PASSWORD, startMariaDb, USER } from "./mariadb.ts";

describe(
  "mysqllock",
  { skip: !mariadbAvailable() && !process.env.CI && "needs root and mariadb-server" },
  () => {
    let db: MariaDb;
    let dir = "";
    before(async () => {
      db = await startMariaDb();
      dir = tempDir();
    });
    after(() => {
      db?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    /** The server's count of clients that went away without closing their connection. */
    const abortedClients = () =>
      Number(db.sql("SHOW GLOBAL STATUS LIKE 'Aborted_clients'").trim().split(/\s+/)[1]);
    const conn = () => ["--mysql-host", "127.0.0.1", "--mysql-port", String(db.port), "--mysql-user", USER];
    const env = { MYSQL_PWD: PASSWORD };
    /** A write from another session, giving up after 1 s: "blocked" while the read lock is held. */
    const tryWrite = `mariadb --no-defaults -h127.0.0.1 -P$PORT -u${USER} -e ` +
      `"SET SESSION lock_wait_timeout=1; INSERT INTO app.t VALUES (2)" 2>/dev/null && echo wrote > "$OUT" || echo blocked > "$OUT"`;

    for (const t of targets()) {
      it(`(${t.name}) holds the lock while CMD runs, releases it, reports binlog coordinates`, async () => {
        const aborted = abortedClients();
        const out = path.join(dir, `w-${t.name}`);
        const r = await run(t, ["mysqllock", ...conn(), "--json", "--", "sh", "-c", tryWrite], {
          cwd: dir,
          env: { ...env, PORT: String(db.port), OUT: out },
        });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(fs.readFileSync(out, "utf8").trim(), "blocked", "a write went through while locked");
        const j = JSON.parse(r.stdout.toString());
        assert.match(j.mysql.binlogFile, /^binlog\.\d+$/);
        assert.ok(j.mysql.binlogPosition > 0);
        assert.match(j.mysql.gtid, /^\d+-\d+-\d+/);
        assert.match(r.stderr, /held the MySQL lock for \d+ ms; binlog binlog\.\d+:\d+/);
        db.sql("INSERT INTO app.t VALUES (3)"); // released: writes go through again
        const code = await run(t, ["mysqllock", ...conn(), "--", "sh", "-c", "exit 7"], { cwd: dir, env });
        assert.equal(code.code, 7, "CMD's exit status is passed through");
        assert.equal(
          abortedClients(),
          aborted,
          "a connection was dropped without a goodbye (Aborted_clients)",
        );
      });

      it(`(${t.name}) security: password from --password-file or ~/.my.cnf, never in any argv`, async () => {
        const pwFile = path.join(dir, "pw");
        fs.writeFileSync(pwFile, PASSWORD + "\n", { mode: 0o600 });
        const cmdline = path.join(dir, `cmdline-${t.name}`);
        const grab = `cat /proc/$PPID/cmdline | tr '\\0' ' ' > ${cmdline}`;
        const r = await run(t, ["mysqllock", ...conn(), "--password-file", pwFile, "--", "sh", "-c", grab], {
          cwd: dir,
        });
        assert.equal(r.code, 0, r.stderr);
        assert.match(fs.readFileSync(cmdline, "utf8"), /mysqllock/);
        assert.ok(
          !fs.readFileSync(cmdline, "utf8").includes(PASSWORD),
          "password visible in the process list",
        );
        const home = path.join(dir, `home-${t.name}`);
        fs.mkdirSync(home, { recursive: true });
        fs.writeFileSync(
          path.join(home, ".my.cnf"),
          `[mysqld]\nuser=nobody\n[client]\nuser=${USER}\npassword="${PASSWORD}"\nhost=127.0.0.1\nport=${db.port}\n`,
        );
        const c = await run(t, ["mysqllock", "--", "true"], { cwd: dir, env: { HOME: home } });
        assert.equal(c.code, 0, c.stderr);
      });

      it(`(${t.name}) fault: wrong password and a server that is gone fail with one clear line`, async () => {
        expectFailure(
          await run(t, ["mysqllock", ...conn(), "--", "true"], { cwd: dir, env: { MYSQL_PWD: "wrong" } }),
          1,
          /access denied for user bk/,
        );
        expectFailure(
          await run(t, ["mysqllock", "--mysql-host", "127.0.0.1", "--mysql-port", "1", "--", "true"], {
            cwd: dir,
            env,
          }),
          1,
          /MySQL at 127\.0\.0\.1:1: cannot connect/,
        );
      });

      it(`(${t.name}) fault: behind a long-running write it gives up within the timeout and writes are not stalled`, async () => {
        const long = db.background("UPDATE app.t SET i = i + SLEEP(20)");
        try {
          await new Promise((r) => setTimeout(r, 700));
          const t0 = Date.now();
          const r = await run(t, [
            "mysqllock",
            ...conn(),
            "--lock-wait-timeout",
            "1",
            "--lock-retries",
            "1",
            "--",
            "true",
          ], {
            cwd: dir,
            env,
          });
          const took = Date.now() - t0;
          expectFailure(r, 1, /FLUSH TABLES WITH READ LOCK not granted within 1s in 2 attempts/);
          assert.ok(took < 9000, `took ${took} ms`);
          const w0 = Date.now();
          db.sql("INSERT INTO app.t VALUES (4)"); // not held up by an abandoned FTWRL
          assert.ok(Date.now() - w0 < 2000, "a write was stalled after the lock attempt gave up");
        } finally {
          long.kill();
        }
      });

      it(`(${t.name}) fault: SIGTERM while CMD runs releases the lock and stops CMD`, async () => {
        const p = start(t, ["mysqllock", ...conn(), "--", "sleep", "30"], { cwd: dir, env });
        await waitLocked(db);
        process.kill(p.child.pid!, "SIGTERM");
        const r = await p.done;
        assert.equal(r.code, 143, r.stderr);
        const w0 = Date.now();
        db.sql("SET SESSION lock_wait_timeout=5; INSERT INTO app.t VALUES (5)");
        assert.ok(Date.now() - w0 < 2000);
      });
    }
  },
);

/** Waits until some session holds the global read lock (a write attempt times out). */
async function waitLocked(db: MariaDb): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      db.sql("SET SESSION lock_wait_timeout=1; INSERT INTO app.t VALUES (9)");
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("the lock was never taken");
}
