/**
 * Where MySQL connection settings come from: command-line options (never the password), then the
 * `[client]` section of ~/.my.cnf; the password from env MYSQL_PWD, else `--password-file`, else ~/.my.cnf.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import type { Duplex } from "node:stream";
import { describeIoError } from "../errors.ts";
import { localUserName } from "../local_user.ts";

export interface MysqlTarget {
  host?: string;
  port?: number;
  socket?: string;
  user?: string;
  passwordFile?: string;
}

export interface MysqlConnectionOptions {
  host?: string;
  port?: number;
  socketPath?: string;
  user: string;
  password?: string;
  /** Reach the server through this stream instead (SSH forwarding to the database host). */
  stream?: () => Promise<Duplex>;
  /** Where `stream` goes through, for messages. */
  via?: string;
}

export function resolveMysql(t: MysqlTarget): MysqlConnectionOptions {
  const cnf = readMyCnf(path.join(os.homedir(), ".my.cnf"));
  const socket = t.socket ?? (t.host || t.port ? undefined : cnf.socket);
  const password = process.env.MYSQL_PWD ||
    (t.passwordFile ? readPasswordFile(t.passwordFile) : cnf.password);
  return {
    user: t.user ?? cnf.user ?? localUserName(), // as the mysql client: the uid's name
    password: password || undefined,
    ...(socket ? { socketPath: socket } : {
      host: t.host ?? cnf.host ?? "127.0.0.1", // not "localhost": it may resolve to ::1 first
      port: t.port ?? (cnf.port ? Number(cnf.port) : 3306),
    }),
  };
}

function readPasswordFile(p: string): string {
  try {
    return fs.readFileSync(p, "utf8").split("\n")[0].replace(/\r$/, "");
  } catch (err) {
    throw describeIoError(`reading password file ${p}`, err);
  }
}

/** The `[client]` section of an option file (`key=value`, optional quotes). Missing file: empty. */
export function readMyCnf(p: string): Record<string, string> {
  let text: string;
  try {
    text = fs.readFileSync(p, "utf8");
  } catch {
    return {};
  }
  const out: Record<string, string> = {};
  let inClient = false;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      inClient = section[1].trim() === "client";
      continue;
    }
    const kv = /^([A-Za-z_-]+)\s*=\s*(.*)$/.exec(line);
    if (inClient && kv) out[kv[1].replaceAll("-", "_")] = kv[2].replace(/^(["'])(.*)\1$/, "$2");
  }
  return out;
}
