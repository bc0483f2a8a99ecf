/**
 * FLUSH TABLES WITH READ LOCK, bounded: lock_wait_timeout plus a watchdog that KILLs the FTWRL query from a
 * second connection when it waits longer (a long-running query would otherwise make FTWRL block every
 * write behind it). Retried a few times, then a clear failure. The lock goes with the connection: closing
 * it (also at exit or on a signal) releases it.
 */
import type mysql from "mysql2/promise";
import { BlockdiffError } from "../errors.ts";
import type { MysqlCoordinates } from "../format/manifest.ts";
import type { MysqlConnectionOptions } from "./credentials.ts";

export interface ReadLockOptions {
  /** Seconds FTWRL may wait before it is abandoned. */
  waitTimeout: number;
  /** Further attempts after the first. */
  retries: number;
  retryDelayMs: number;
  /**
   * Seconds the lock may be held at most (for `backup`: lvcreate should take a second or two). Past it the
   * lock is dropped so writes go on, and release() fails: what was done under it is not consistent.
   */
  maxHoldSeconds?: number;
}

type Conn = mysql.Connection;
type Row = Record<string, unknown>;

export class MysqlReadLock {
  #lockedAt: number;
  #released = false;
  #expired = false;
  #holdTimer: ReturnType<typeof setTimeout> | undefined;

  private constructor(
    private readonly conn: Conn,
    readonly binlog: Omit<MysqlCoordinates, "lockHeldMs">,
    private readonly maxHoldSeconds: number | undefined,
  ) {
    this.#lockedAt = Date.now();
    if (maxHoldSeconds) {
      this.#holdTimer = setTimeout(() => {
        this.#expired = true;
        void this.close();
      }, maxHoldSeconds * 1000);
    }
  }

  static async acquire(
    opts: MysqlConnectionOptions,
    o: ReadLockOptions,
    log: (l: string) => void,
  ): Promise<MysqlReadLock> {
    const conn = await connect(opts);
    let killer: Conn | null = null;
    try {
      killer = await connect(opts);
      await conn.query("SET SESSION lock_wait_timeout = ?", [o.waitTimeout]);
      const [[{ id }]] = await conn.query("SELECT CONNECTION_ID() AS id") as unknown as [[{ id: number }]];
      for (let attempt = 1;; attempt++) {
        const k = killer;
        const watchdog = setTimeout(
          () => void k.query(`KILL QUERY ${Number(id)}`).catch(() => {}),
          o.waitTimeout * 1000 + 250,
        );
        try {
          await conn.query("FLUSH TABLES WITH READ LOCK");
          clearTimeout(watchdog);
          break;
        } catch (err) {
          clearTimeout(watchdog);
          const e = err as { errno?: number; message?: string };
          if (e.errno !== 1317 && e.errno !== 1205) throw describeMysqlError(opts, err);
          const left = o.retries - attempt + 1;
          log(
            `FLUSH TABLES WITH READ LOCK not granted within ${o.waitTimeout}s (attempt ${attempt}); ${left} left`,
          );
          if (left <= 0) {
            throw new BlockdiffError(
              `MySQL: FLUSH TABLES WITH READ LOCK not granted within ${o.waitTimeout}s in ${attempt} attempts ` +
                `(a long-running query?); gave up so writes are not held up`,
            );
          }
          await new Promise((r) => setTimeout(r, o.retryDelayMs));
        }
      }
      return new MysqlReadLock(conn, await readCoordinates(conn), o.maxHoldSeconds);
    } catch (err) {
      await closeCleanly(conn);
      throw err;
    } finally {
      if (killer) await closeCleanly(killer);
    }
  }

  /** UNLOCK TABLES and close; returns the coordinates with how long the lock was held. */
  async release(): Promise<MysqlCoordinates> {
    const lockHeldMs = Date.now() - this.#lockedAt;
    clearTimeout(this.#holdTimer);
    if (this.#expired) {
      throw new BlockdiffError(
        `MySQL: the lock was dropped after ${this.maxHoldSeconds}s so that writes could go on (--lock-max-hold); ` +
          `what ran under it took too long and is not consistent`,
      );
    }
    await this.close();
    return { ...this.binlog, lockHeldMs };
  }

  /** UNLOCK TABLES and a clean close (the server logs no aborted connection); the lock goes either way. */
  async close(): Promise<void> {
    clearTimeout(this.#holdTimer);
    if (this.#released) return;
    this.#released = true;
    try {
      await this.conn.query("UNLOCK TABLES");
    } catch { /* closing the connection releases the lock too */ }
    await closeCleanly(this.conn);
  }

  /** Synchronous release for signal handlers: the server drops the lock with the connection. */
  destroy(): void {
    clearTimeout(this.#holdTimer);
    this.#released = true;
    this.conn.destroy();
  }
}

/** "held the MySQL lock for N ms; binlog F:P; GTID G" */
export function describeLockHeld(c: MysqlCoordinates): string {
  return `held the MySQL lock for ${c.lockHeldMs} ms` +
    (c.binlogFile ? `; binlog ${c.binlogFile}:${c.binlogPosition}` : "; binary log off") +
    (c.gtid ? `; GTID ${c.gtid}` : "");
}

/** COM_QUIT, so the server counts no aborted client; a connection that cannot say it is cut. */
async function closeCleanly(conn: Conn): Promise<void> {
  try {
    await conn.end();
  } catch {
    conn.destroy();
  }
}

async function connect(opts: MysqlConnectionOptions): Promise<Conn> {
  try {
    const { stream, via: _via, ...plain } = opts;
    // Loaded only here: mysql2 costs every run memory and start-up time, and only --mysql-lock needs it.
    const { createConnection } = await import("mysql2/promise");
    return await createConnection({
      ...plain,
      ...(stream ? { stream: await stream() } : {}),
      connectTimeout: 10000,
    });
  } catch (err) {
    if (err instanceof BlockdiffError) throw err;
    throw describeMysqlError(opts, err);
  }
}

async function readCoordinates(conn: Conn): Promise<Omit<MysqlCoordinates, "lockHeldMs">> {
  const [rows] = await conn.query("SHOW MASTER STATUS") as unknown as [Row[]];
  const gtid = await firstValue(conn, [
    "SELECT @@GLOBAL.gtid_binlog_pos AS v",
    "SELECT @@GLOBAL.gtid_executed AS v",
  ]);
  return {
    binlogFile: rows[0] ? String(rows[0].File) : null,
    binlogPosition: rows[0] ? Number(rows[0].Position) : null,
    gtid: gtid || null,
  };
}

async function firstValue(conn: Conn, queries: string[]): Promise<string | null> {
  for (const q of queries) {
    try {
      const [rows] = await conn.query(q) as unknown as [Row[]];
      return rows[0]?.v == null ? null : String(rows[0].v);
    } catch { /* not this server's variable */ }
  }
  return null;
}

function describeMysqlError(opts: MysqlConnectionOptions, err: unknown): BlockdiffError {
  const e = err as { code?: string; message?: string };
  const where = (opts.socketPath ?? `${opts.host}:${opts.port}`) +
    (opts.via ? ` (through ssh ${opts.via})` : "");
  if (e.code === "ER_ACCESS_DENIED_ERROR") {
    return new BlockdiffError(
      `MySQL at ${where}: access denied for user ${opts.user} (password from MYSQL_PWD, --password-file or ~/.my.cnf)`,
    );
  }
  if (e.code === "ECONNREFUSED" || e.code === "ENOENT" || e.code === "ETIMEDOUT") {
    return new BlockdiffError(`MySQL at ${where}: cannot connect (${e.code})`);
  }
  return new BlockdiffError(`MySQL at ${where}: ${e.message ?? String(err)}`);
}
