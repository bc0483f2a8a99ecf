/**
 * A MariaDB server inside the UML guest, its datadir (with the binary log) on an ext4 LV, its socket under
 * the guest's /run, and a writer that inserts rows without pause (one autocommit transaction, so one GTID,
 * per row) for hot backups to be taken under.
 */
import type { Guest } from "./uml.ts";
import { PASSWORD, USER } from "./mariadb.ts";
import { waitUntil } from "./helpers.ts";

export const GUEST_SOCKET = "/run/bdmy.sock";
/** Small InnoDB logs and pool: the LV is small and the guest has 512 MB. */
export const SERVER_OPTIONS = [
  "--innodb-log-file-size=8M",
  "--innodb-buffer-pool-size=32M",
  "--innodb-buffer-pool-size-max=64M",
  "--log-bin=binlog",
  "--server-id=1",
  "--skip-networking",
];

export interface GuestDb {
  sql(query: string): string;
  /** Sequence number of the server's last GTID (each transaction adds one). */
  gtidSeq(): number;
  startWriter(): void;
  stopWriter(): void;
  /** A long-running query in the background; returns a function that ends it. */
  background(query: string): () => void;
  stop(): void;
}

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const CLIENT = `mariadb --no-defaults -S ${GUEST_SOCKET} -uroot`;

export async function startGuestDb(guest: Guest, device: string, mountpoint: string): Promise<GuestDb> {
  guest.sh(
    `mkfs.ext4 -q -F ${device} && mkdir -p ${mountpoint} && mount ${device} ${mountpoint} && ` +
      `mariadb-install-db --no-defaults --user=root --datadir=${mountpoint}/data ${
        SERVER_OPTIONS.join(" ")
      } ` +
      `>/run/bdmy-install.log 2>&1`,
  );
  guest.sh(
    `setsid /usr/sbin/mariadbd --no-defaults --user=root --datadir=${mountpoint}/data --socket=${GUEST_SOCKET} ` +
      `--pid-file=/run/bdmy.pid ${SERVER_OPTIONS.join(" ")} </dev/null >/run/bdmy.log 2>&1 &`,
  );
  const sql = (query: string) => guest.sh(`${CLIENT} -N -e ${q(query)}`).trim();
  await waitUntil(() => (sql("SELECT 1"), true), "mariadbd in the guest", 60000, 500);
  const pw = PASSWORD.replaceAll("'", "''");
  sql(
    `CREATE USER ${USER}@localhost IDENTIFIED BY '${pw}'; GRANT RELOAD, BINLOG MONITOR ON *.* TO ${USER}@localhost; ` +
      "CREATE DATABASE app; CREATE TABLE app.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT) ENGINE=InnoDB; " +
      "CREATE TABLE app.slow (i INT) ENGINE=InnoDB; INSERT INTO app.slow VALUES (1);",
  );
  return {
    sql,
    gtidSeq: () => Number(sql("SELECT @@GLOBAL.gtid_binlog_pos").split("-").at(-1)),
    startWriter() {
      const loop =
        `echo $$ > /run/bdwriter.pid; while :; do echo "INSERT INTO app.t (v) VALUES (1);"; done | ${CLIENT}`;
      guest.sh(`setsid sh -c ${q(loop)} </dev/null >/dev/null 2>&1 &`);
    },
    stopWriter() {
      guest.sh("kill -- -$(cat /run/bdwriter.pid) 2>/dev/null; rm -f /run/bdwriter.pid; true");
    },
    background(query) {
      guest.sh(`setsid ${CLIENT} -e ${q(`/* bdbg */ ${query}`)} --comments </dev/null >/dev/null 2>&1 &`);
      return () => {
        const ids = sql(
          "SELECT id FROM information_schema.processlist WHERE info LIKE '%bdbg%' AND id <> CONNECTION_ID()",
        );
        for (const id of ids.split("\n").filter((l) => /^\d+$/.test(l.trim()))) sql(`KILL ${id}`);
      };
    },
    stop() {
      guest.sh(
        `test -f /run/bdwriter.pid && kill -- -$(cat /run/bdwriter.pid); ` +
          `kill $(cat /run/bdmy.pid) 2>/dev/null; while test -e /run/bdmy.pid; do sleep 0.2; done; ` +
          `umount ${mountpoint}; true`,
      );
    },
  };
}
