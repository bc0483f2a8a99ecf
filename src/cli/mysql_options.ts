/**
 * The MySQL connection and read-lock options shared by `mysqllock` and `backup --mysql-lock`. The lock's
 * options are named --mysql-lock-*; their first names (--lock-wait-timeout, --lock-retries) stay as aliases.
 */
import { resolveMysql } from "../mysql/credentials.ts";
import type { ReadLockOptions } from "../mysql/read_lock.ts";
import { intOpt, type OptionSpec, type ParsedArgs, stringOpt } from "./args.ts";

export const MYSQL_OPTIONS: OptionSpec[] = [
  { name: "mysql-host", kind: "value" },
  { name: "mysql-port", kind: "value" },
  { name: "mysql-socket", kind: "value" },
  { name: "mysql-user", kind: "value" },
  { name: "password-file", kind: "value" },
  { name: "mysql-lock-wait-timeout", aliases: ["lock-wait-timeout"], kind: "value" },
  { name: "mysql-lock-retries", aliases: ["lock-retries"], kind: "value" },
];

export const MYSQL_HELP = `  --mysql-host H / --mysql-port P / --mysql-socket S / --mysql-user U
                        where to connect (default: ~/.my.cnf [client], else 127.0.0.1:3306)
  --password-file FILE  first line is the password; env MYSQL_PWD or ~/.my.cnf work too. There is no
                        password option: it would show in the process list.
  --mysql-lock-wait-timeout S  how long FLUSH TABLES WITH READ LOCK may wait (default 5); then it is
                        killed so a long-running query cannot stall writes behind it
  --mysql-lock-retries N  further attempts after a timeout (default 2, 3 s apart)
                        (--lock-wait-timeout and --lock-retries are the same options' former names)`;

export function mysqlFromArgs(args: ParsedArgs) {
  return resolveMysql({
    host: stringOpt(args, "mysql-host"),
    port: intOpt(args, "mysql-port"),
    socket: stringOpt(args, "mysql-socket"),
    user: stringOpt(args, "mysql-user"),
    passwordFile: stringOpt(args, "password-file"),
  });
}

export function readLockFromArgs(args: ParsedArgs): ReadLockOptions {
  return {
    waitTimeout: intOpt(args, "mysql-lock-wait-timeout") ?? 5,
    retries: intOpt(args, "mysql-lock-retries", 0) ?? 2,
    retryDelayMs: 3000,
  };
}
