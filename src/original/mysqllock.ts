/**
 * `mysqllock [--user=U] [--password=P] [--host=H] [--port=N] [--db=D] [--] CMD ARGS...`, the original's
 * lock wrapper: `blockdiff mysqllock` with its --mysql-* options. CMD starts at the first word that is not
 * an option (or after `--`). --password is taken, with a warning (it shows in the process list), and goes
 * to blockdiff through env MYSQL_PWD, which CMD does not inherit. Host `localhost` (the original's default)
 * meant the server's Unix socket to the original's MySQL client library, so it is the socket here too.
 */
import * as fs from "node:fs";
import process from "node:process";
import { UsageError } from "../errors.ts";
import { type Outcome, runTranslated } from "./translate.ts";

const NAME = "mysqllock";

export const MYSQLLOCK_HELP = `usage: mysqllock [options] [--] CMD [ARGS...]

blockdiff under the original mysqllock's name: runs 'blockdiff mysqllock' (see blockdiff mysqllock
--help): FLUSH TABLES WITH READ LOCK, CMD, UNLOCK TABLES; exits with CMD's status.

  --user=U        MySQL user (default: ~/.my.cnf, else the login name)
  --password=P    password: shows in the process list (a warning says so); prefer env MYSQL_PWD or
                  ~/.my.cnf. CMD does not see it
  --host=H        server (default localhost: the Unix socket, as the original's client library took it)
  --port=N        TCP port (default 3306)
  --db=D          accepted and not used: the lock is server-wide
  -h, --help      this help`;

/** Where MySQL's and MariaDB's packages put the server's socket, the client library's compiled defaults. */
const DEFAULT_SOCKETS = [
  "/run/mysqld/mysqld.sock",
  "/var/run/mysqld/mysqld.sock",
  "/var/lib/mysql/mysql.sock",
  "/tmp/mysql.sock",
];

export function translateMysqllock(
  argv: string[],
  o: { sockets?: string[]; env?: Record<string, string | undefined> } = {},
): Outcome {
  const env = o.env ?? process.env;
  const values = new Map<string, string>();
  let i = 0;
  for (; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      i++;
      break;
    }
    if (!a.startsWith("-") || a === "-") break; // CMD
    // --name=value or --name value; one dash does too, as Perl's Getopt::Long took it
    const body = a.replace(/^--?/, "");
    const eq = body.indexOf("=");
    const key = eq < 0 ? body : body.slice(0, eq);
    if (key === "help" || key === "h") return { print: MYSQLLOCK_HELP, code: 0 };
    if (key === "before" || key === "after") {
      throw new UsageError(
        `${NAME}: --${key} is not supported: the lock is always FLUSH TABLES WITH READ LOCK, then UNLOCK TABLES`,
      );
    }
    if (!["user", "password", "host", "port", "db"].includes(key)) {
      throw new UsageError(`${NAME}: unknown option ${a} (see ${NAME} --help)`);
    }
    const value = eq >= 0 ? body.slice(eq + 1) : argv[++i];
    if (value === undefined) throw new UsageError(`${NAME}: --${key} needs a value`);
    values.set(key, value);
  }
  const cmd = argv.slice(i);
  if (cmd.length === 0) {
    throw new UsageError(`${NAME}: no command (usage: ${NAME} [options] [--] CMD [ARGS...])`);
  }
  const port = values.get("port");
  if (port !== undefined && !/^\d+$/.test(port)) {
    throw new UsageError(`${NAME}: --port must be a number, not '${port}'`);
  }
  const host = values.get("host") ?? "localhost";
  const user = values.get("user");
  const password = values.get("password");
  let where: string[];
  if (host === "localhost") {
    const socket = env.MYSQL_UNIX_PORT || (o.sockets ?? DEFAULT_SOCKETS).find((s) => isSocket(s));
    if (socket) where = ["--mysql-socket", socket];
    // no socket: blockdiff's default (~/.my.cnf, else 127.0.0.1:3306) unless the host was named
    else if (values.has("host")) {
      where = ["--mysql-host", "127.0.0.1", ...(port ? ["--mysql-port", port] : [])];
    } else where = port ? ["--mysql-port", port] : [];
  } else where = ["--mysql-host", host, ...(port ? ["--mysql-port", port] : [])];
  return {
    args: ["mysqllock", ...(user !== undefined ? ["--mysql-user", user] : []), ...where, "--", ...cmd],
    ...(password !== undefined && {
      env: { MYSQL_PWD: password },
      restoreAfterStart: ["MYSQL_PWD"],
      secret: ["MYSQL_PWD"],
      notes: [
        `warning: ${NAME} --password shows the password in the process list; ` +
        `give it in env MYSQL_PWD or ~/.my.cnf instead`,
      ],
    }),
  };
}

function isSocket(p: string): boolean {
  try {
    return fs.statSync(p).isSocket();
  } catch {
    return false;
  }
}

export function runMysqllock(argv: string[]): Promise<number> {
  return runTranslated(NAME, argv, (a) => translateMysqllock(a));
}
