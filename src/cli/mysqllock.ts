import { spawn, type StdioOptions } from "node:child_process";
import { onCleanup } from "../cleanup.ts";
import { BlockdiffError, UsageError } from "../errors.ts";
import { RunLog } from "../log/run_log.ts";
import { openInheritedFd } from "../runtime.ts";
import { describeLockHeld, MysqlReadLock } from "../mysql/read_lock.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { MYSQL_HELP, MYSQL_OPTIONS, mysqlFromArgs, readLockFromArgs } from "./mysql_options.ts";
import { note, printJson } from "./output.ts";

export const mysqllockCommand: Command = {
  name: "mysqllock",
  summary: "run a command while holding FLUSH TABLES WITH READ LOCK (original mysqllock)",
  help: `usage: blockdiff mysqllock [options] -- CMD [ARGS...]

Takes FLUSH TABLES WITH READ LOCK, runs CMD, then UNLOCK TABLES, and exits with CMD's status. The lock is
released on every path (CMD failing, SIGINT/SIGTERM, this process dying: the server drops it with the
connection). Prints the binlog file/position and GTID read while locked.

options:
${MYSQL_HELP}
  --json                print the coordinates as JSON on stdout
  -h, --help            this help

example:
  MYSQL_PWD=... blockdiff mysqllock --mysql-user backup -- lvcreate --snapshot -L 10G -n snap vg0/mysql`,
  options: [HELP_OPTION, JSON_OPTION, ...MYSQL_OPTIONS],
  async run(args) {
    if (args.rest.length === 0 || args.positionals.length) {
      throw new UsageError("usage: blockdiff mysqllock [options] -- CMD [ARGS...]");
    }
    const lock = await MysqlReadLock.acquire(
      mysqlFromArgs(args),
      readLockFromArgs(args),
      (l) => new RunLog(null).info(l),
    );
    const unregister = onCleanup(() => lock.destroy());
    let code: number;
    try {
      code = await runCommand(args.rest);
    } finally {
      unregister();
    }
    const c = await lock.release();
    if (args.opts.has("json")) printJson({ command: args.rest, exitCode: code, mysql: c });
    note(describeLockHeld(c));
    return code;
  },
};

/**
 * Runs CMD with our stdin, stdout, stderr and the descriptors 5 and 6 the caller passed (`mysqllock --
 * blockdiff dump ... 5< old.md5 6> new.md5`, as the original's exec passed them on); if we are interrupted,
 * CMD gets SIGTERM too (and the lock goes with our connection).
 */
function runCommand(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const digests = [openInheritedFd(5, "r"), openInheritedFd(6, "w")].map((fd) => fd ?? "ignore");
    const stdio: StdioOptions = ["inherit", "inherit", "inherit", "ignore", "ignore", ...digests];
    const child = spawn(argv[0], argv.slice(1), { stdio });
    const unregister = onCleanup(() => child.kill("SIGTERM"));
    child.on("exit", unregister);
    child.on("error", (err) => reject(new BlockdiffError(`cannot run ${argv[0]}: ${err.message}`)));
    child.on("close", (code) => resolve(code ?? 128 + 15));
  });
}
