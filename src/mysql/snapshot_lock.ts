/**
 * FLUSH TABLES WITH READ LOCK as a snapshot's lock: taken just before lvcreate, released right after it; the
 * binlog coordinates read under it are kept for the manifest.
 */
import { onCleanup } from "../cleanup.ts";
import type { MysqlCoordinates } from "../format/manifest.ts";
import type { LockAround } from "../snapshot/session.ts";
import type { MysqlConnectionOptions } from "./credentials.ts";
import { describeLockHeld, type LockOptions, MysqlLock } from "./lock.ts";

export interface SnapshotLock {
  lock: LockAround;
  /** Set once the lock was released after a successful lvcreate. */
  coordinates(): MysqlCoordinates | null;
}

export function mysqlSnapshotLock(
  conn: MysqlConnectionOptions,
  o: LockOptions,
  log: (line: string) => void,
): SnapshotLock {
  let coordinates: MysqlCoordinates | null = null;
  return {
    lock: async () => {
      const lock = await MysqlLock.acquire(conn, o, log);
      const unregister = onCleanup(() => lock.destroy());
      return async (created) => {
        unregister();
        if (!created) return await lock.close();
        coordinates = await lock.release();
        log(describeLockHeld(coordinates));
      };
    },
    coordinates: () => coordinates,
  };
}
