/** A real MariaDB server for the tests: its own datadir, socket and loopback port, binary log on. */
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import process from "node:process";
import { tempDir, waitUntil } from "./helpers.ts";

export interface MariaDb {
  port: number;
  dir: string;
  /** Runs SQL as root over the socket; returns stdout. */
  sql(query: string): string;
  /** Starts a long-running `query`; kill() ends it on the server too. */
  background(query: string): { kill(): void };
  stop(): Promise<void>;
}

export const USER = "bk", PASSWORD = "s3cret pass'word";

export function mariadbAvailable(): boolean {
  return fs.existsSync("/usr/sbin/mariadbd") && process.getuid?.() === 0;
}

export async function startMariaDb(): Promise<MariaDb> {
  const dir = tempDir("blockdiff-mariadb-");
  const data = path.join(dir, "data"), sock = path.join(dir, "sock");
  execFileSync("mariadb-install-db", ["--no-defaults", "--user=root", `--datadir=${data}`], {
    stdio: "ignore",
  });
  const port = await new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
  const server = await serveDatadir(data, sock, [
    `--port=${port}`,
    "--bind-address=127.0.0.1",
    `--log-bin=${path.join(data, "binlog")}`,
    "--server-id=1",
    "--innodb-buffer-pool-size=64M",
  ]);
  const sql = server.sql;
  const pw = PASSWORD.replaceAll("'", "''");
  sql(
    ["localhost", "127.0.0.1"].map((h) =>
      `CREATE USER ${USER}@'${h}' IDENTIFIED BY '${pw}'; GRANT ALL ON *.* TO ${USER}@'${h}';`
    )
      .join(" ") +
      " CREATE DATABASE app; CREATE TABLE app.t (i INT) ENGINE=InnoDB; INSERT INTO app.t VALUES (1);",
  );
  return {
    port,
    dir,
    sql,
    background(query) {
      const c = spawn("mariadb", [
        "--no-defaults",
        "--comments",
        `--socket=${sock}`,
        "-uroot",
        "-e",
        `/* blockdiff-test-bg */ ${query}`,
      ], {
        stdio: "ignore",
      });
      return {
        kill: () => {
          const ids = sql(
            "SELECT id FROM information_schema.processlist WHERE info LIKE '%blockdiff-test-bg%' AND id <> CONNECTION_ID()",
          ).split("\n").map((l) => l.trim()).filter((l) => /^\d+$/.test(l));
          for (const id of ids) sql(`KILL ${id}`);
          c.kill("SIGKILL");
        },
      };
    },
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A mariadbd on `data` (e.g. a restored backup) with its socket at `sock`; sql() runs as root. */
export async function serveDatadir(
  data: string,
  sock: string,
  extra: string[],
): Promise<{ sql(query: string): string; stop(): Promise<void> }> {
  const server = spawn(
    "/usr/sbin/mariadbd",
    ["--no-defaults", "--user=root", `--datadir=${data}`, `--socket=${sock}`, ...extra],
    { stdio: "ignore" },
  );
  const exited = new Promise((r) => server.once("exit", r));
  const sql = (query: string) =>
    execFileSync("mariadb", ["--no-defaults", `--socket=${sock}`, "-uroot", "-N", "-e", query], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "pipe"],
    });
  await Promise.race([
    waitUntil(() => (sql("SELECT 1"), true), `mariadbd on ${data} to start`),
    exited.then(() => Promise.reject(new Error(`mariadbd on ${data} exited at startup`))),
  ]);
  return {
    sql,
    async stop() {
      server.kill("SIGTERM");
      await exited;
    },
  };
}
