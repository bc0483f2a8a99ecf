/**
 * The MySQL read lock (FLUSH TABLES WITH READ LOCK) as what quiesces the database for a snapshot: taken just
 * before lvcreate, released right after it; the binlog coordinates read under it are kept for the manifest.
 */
import { onCleanup } from "../cleanup.ts";
import type { MysqlCoordinates } from "../format/manifest.ts";
import type { SnapshotQuiesce } from "../snapshot/session.ts";
import type { MysqlConnectionOptions } from "./credentials.ts";
import { describeLockHeld, MysqlReadLock, type ReadLockOptions } from "./read_lock.ts";

export interface MysqlQuiesce {
  quiesce: SnapshotQuiesce;
  /** Set once the lock was released after a successful lvcreate. */
  coordinates(): MysqlCoordinates | null;
}

export function mysqlQuiesce(
  o: { conn: MysqlConnectionOptions; lock: ReadLockOptions; log: (line: string) => void },
): MysqlQuiesce {
  let coordinates: MysqlCoordinates | null = null;
  return {
    quiesce: async () => {
      const lock = await MysqlReadLock.acquire(o.conn, o.lock, o.log);
      const unregister = onCleanup(() => lock.destroy());
      return async (created) => {
        unregister();
        if (!created) return await lock.close();
        coordinates = await lock.release();
        o.log(describeLockHeld(coordinates));
      };
    },
    coordinates: () => coordinates,
  };
}
