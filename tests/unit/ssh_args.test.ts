/** The original tools' command lines: SSH_ARGS of the remote scripts, and each tool's line as blockdiff's. */
import assert from "node:assert/strict";
import * as os from "node:os";
import * as path from "node:path";
import { describe } from "node:test";
import { EXIT } from "../../src/errors.ts";
import { translateBlockdiffDump } from "../../src/original/blockdiff_dump.ts";
import { translateBlockdiffMerge } from "../../src/original/blockdiff_merge.ts";
import { translateMysqllock } from "../../src/original/mysqllock.ts";
import { originalTool } from "../../src/original/names.ts";
import { type OriginalSsh, parseSshArgs, remoteSource, sshOptionArgs } from "../../src/original/ssh_args.ts";
import { translateSshBlockdiffDump } from "../../src/original/ssh_blockdiff_dump.ts";
import { translateSshLvmDump } from "../../src/original/ssh_lvm_dump.ts";
import type { Outcome, Translation } from "../../src/original/translate.ts";
import { it } from "../helpers.ts";

const NONE: OriginalSsh = {
  host: "db1",
  user: null,
  port: null,
  identity: null,
  knownHosts: null,
  acceptNewHostKey: false,
  config: null,
};
const ssh = (text: string) => parseSshArgs(text, "ssh_lvm_dump");
/** Asserts a usage error (exit 2) whose one line matches. */
const refused = (f: () => unknown, pattern: RegExp) =>
  assert.throws(f, (e: Error & { exitCode?: number }) => {
    assert.equal(e.exitCode, EXIT.usage, e.message);
    assert.match(e.message, pattern);
    assert.ok(!e.message.includes("\n"), "more than one line");
    return true;
  });
const cmd = (o: Outcome): Translation => {
  assert.ok(!("print" in o), "help instead of a command");
  return o as Translation;
};

describe("SSH_ARGS of the original ssh_blockdiff_dump and ssh_lvm_dump", () => {
  it("reads the destination alone, with user@, and as ssh://user@host:port", () => {
    assert.deepEqual(ssh("db1"), NONE);
    assert.deepEqual(ssh("  root@db1 "), { ...NONE, user: "root" });
    assert.deepEqual(ssh("ssh://bk@db1:2200"), { ...NONE, user: "bk", port: 2200 });
  });

  it("reads -p, -i, -l, -F with the value apart or attached, and -o Key=Value or -o Key Value", () => {
    const home = os.homedir();
    assert.deepEqual(ssh("-p 2222 -i /k/id -l bk -F /etc/bk.conf db1"), {
      ...NONE,
      user: "bk",
      port: 2222,
      identity: "/k/id",
      config: "/etc/bk.conf",
    });
    assert.deepEqual(ssh("-p2222 -i~/id -lbk db1"), {
      ...NONE,
      user: "bk",
      port: 2222,
      identity: path.join(home, "id"),
    });
    assert.deepEqual(
      ssh(
        "-o Port=2200 -oUser=bk -o IdentityFile=~/.ssh/bk -o userknownhostsfile=/k/kh -o BatchMode=yes db1",
      ),
      { ...NONE, user: "bk", port: 2200, identity: path.join(home, ".ssh", "bk"), knownHosts: "/k/kh" },
    );
    assert.deepEqual(ssh("-o Port 2201 -o User bk db1"), { ...NONE, user: "bk", port: 2201 });
  });

  it("takes the first value given for the user and the port, as ssh does", () => {
    assert.equal(ssh("-l bob alice@db1").user, "bob");
    assert.equal(ssh("alice@db1 -l bob").user, "alice");
    assert.equal(ssh("-o User=carol -l bob db1").user, "carol");
    assert.equal(ssh("-p 1 -o Port=2 ssh://db1:3").port, 1);
    assert.equal(ssh("ssh://db1:3 -p 1").port, 3);
    assert.equal(ssh("-i /a -o IdentityFile=/a db1").identity, "/a");
  });

  it("security: StrictHostKeyChecking accept-new and no accept a new host key (a changed one stays refused); yes and ask do not", () => {
    for (const v of ["accept-new", "no", "off", "No"]) {
      assert.equal(ssh(`-o StrictHostKeyChecking=${v} db1`).acceptNewHostKey, true, v);
    }
    for (const v of ["yes", "ask"]) {
      assert.equal(ssh(`-o StrictHostKeyChecking=${v} db1`).acceptNewHostKey, false, v);
    }
    assert.equal(ssh("-o StrictHostKeyChecking=yes -o StrictHostKeyChecking=no db1").acceptNewHostKey, false);
    refused(() => ssh("-o StrictHostKeyChecking=maybe db1"), /StrictHostKeyChecking must be .*not 'maybe'/);
  });

  it("security: refuses any other ssh option by name, rather than dropping it", () => {
    for (const o of ["-q", "-C", "-4", "-A", "-v", "-tt", "-J", "-L", "--"]) {
      refused(
        () => ssh(`${o} db1`),
        new RegExp(`SSH_ARGS '${o} db1': option ${o} is not supported \\(only -p`),
      );
    }
    refused(() => ssh("-o ProxyCommand=nc db1"), /option -o ProxyCommand is not supported/);
    refused(() => ssh("-oCompression=yes db1"), /option -o Compression is not supported/);
    refused(() => ssh("-o BatchMode=maybe db1"), /BatchMode must be yes or no/);
  });

  it("refuses bad values, no destination, two destinations and what is not [user@]host", () => {
    refused(() => ssh(""), /SSH_ARGS '': no destination \[user@\]host/);
    refused(() => ssh("-p 2222"), /no destination/);
    refused(() => ssh("root@db1 uptime"), /more than one destination \('root@db1', 'uptime'\)/);
    refused(() => ssh("-p"), /option -p needs a value/);
    refused(() => ssh("-o Port= db1"), /option -o Port needs a value/);
    refused(() => ssh("-p 0 db1"), /-p '0' is not a port/);
    refused(() => ssh("-p 65536 db1"), /-p '65536' is not a port/);
    refused(() => ssh("-pq db1"), /-p 'q' is not a port/);
    refused(() => ssh("-o Port=x db1"), /-o Port 'x' is not a port/);
    refused(() => ssh("-i /a -i /b db1"), /more than one identity file/);
    refused(() => ssh("-o UserKnownHostsFile=/a db1 -o UserKnownHostsFile"), /needs a value/);
    for (const d of ["root@db1:22", "::1", "a@b@db1", "'root@db1'", "root@$(id)", "db1/x", ".db1"]) {
      refused(() => ssh(d), /is not a destination \[user@\]host/);
    }
    refused(() => ssh("-l 'bk' db1"), /^ssh_lvm_dump: SSH_ARGS '-l 'bk' db1': ''bk'' is not a user name$/);
  });

  it("says it as blockdiff's SSH options and remote SOURCE; a remote path must be absolute", () => {
    const s = ssh("-p 2222 -i /k -o UserKnownHostsFile=/kh -o StrictHostKeyChecking=accept-new -F /c bk@db1");
    assert.deepEqual(sshOptionArgs(s), [
      "--identity",
      "/k",
      "--known-hosts",
      "/kh",
      "--accept-new-host-key",
      "--ssh-config",
      "/c",
    ]);
    assert.equal(remoteSource(s, "/dev/vg0/db", "ssh_lvm_dump", "LV"), "bk@db1:2222:/dev/vg0/db");
    assert.equal(remoteSource(NONE, "/a b:c", "x", "FILE"), "db1:/a b:c");
    assert.deepEqual(sshOptionArgs(NONE), []);
    refused(
      () => remoteSource(NONE, "vg0/db", "ssh_lvm_dump", "LV"),
      /^ssh_lvm_dump: LV must be an absolute path on the remote host, not 'vg0\/db'$/,
    );
  });
});

describe("the original tools' command lines as blockdiff's", () => {
  it("knows the six names, and nothing else", () => {
    for (
      const n of [
        "blockdiff_dump",
        "blockdiff_merge",
        "blockdiff_backup",
        "ssh_blockdiff_dump",
        "ssh_lvm_dump",
      ]
    ) {
      assert.equal(originalTool(n), n);
    }
    assert.equal(originalTool("mysqllock"), "mysqllock");
    for (const n of ["blockdiff", "deno", "bun", "", "blockdiff_dump.ts", "toString", "constructor"]) {
      assert.equal(originalTool(n), null, n);
    }
  });

  it("blockdiff_dump: dump of a local FILE or stdin; --blocksize goes to env BLOCKSIZE (an old digest's wins)", () => {
    assert.deepEqual(cmd(translateBlockdiffDump([])), { args: ["dump"], env: {} });
    assert.deepEqual(cmd(translateBlockdiffDump(["--blocksize=4096", "-z", "img"])), {
      args: ["dump", "--gzip", "./img"],
      env: { BLOCKSIZE: "4096" },
    });
    assert.deepEqual(cmd(translateBlockdiffDump(["--lzop", "--blocksize", "512", "/dev/sdb"])).args, [
      "dump",
      "--lzop",
      "/dev/sdb",
    ]);
    // a local file, whatever it looks like
    assert.deepEqual(cmd(translateBlockdiffDump(["--gzip", "--", "-x"])).args, ["dump", "--gzip", "./-x"]);
    assert.deepEqual(cmd(translateBlockdiffDump(["host:/path"])).args, ["dump", "./host:/path"]);
    assert.deepEqual(cmd(translateBlockdiffDump(["--version"])).args, ["--version"]);
    assert.match((translateBlockdiffDump(["--help"]) as { print: string }).print, /^usage: blockdiff_dump /);
    refused(() => translateBlockdiffDump(["a", "b"]), /^usage: blockdiff_dump /);
    refused(
      () => translateBlockdiffDump(["--blocksize=0"]),
      /--blocksize must be a number of bytes .*not '0'/,
    );
    refused(() => translateBlockdiffDump(["--blocksize=16k"]), /not '16k'/);
    refused(() => translateBlockdiffDump(["--bogus"]), /blockdiff_dump: unknown option --bogus/);
  });

  it("blockdiff_merge: merge FILE; a FILE starting with - is a file", () => {
    assert.deepEqual(cmd(translateBlockdiffMerge(["disk.img"])).args, ["merge", "./disk.img"]);
    assert.deepEqual(cmd(translateBlockdiffMerge(["/x/disk.img"])).args, ["merge", "/x/disk.img"]);
    assert.deepEqual(cmd(translateBlockdiffMerge(["-z"])).args, ["merge", "./-z"]);
    assert.match(
      (translateBlockdiffMerge(["--help"]) as { print: string }).print,
      /^usage: blockdiff_merge FILE/,
    );
    refused(() => translateBlockdiffMerge([]), /^usage: blockdiff_merge FILE < diff$/);
    refused(() => translateBlockdiffMerge(["a", "b"]), /^usage: blockdiff_merge FILE < diff$/);
  });

  it("ssh_blockdiff_dump: dump of user@host[:port]:FILE with the compression option first", () => {
    const t = (...a: string[]) => cmd(translateSshBlockdiffDump(a));
    assert.deepEqual(t("root@db1", "/srv/a.img"), { args: ["dump", "root@db1:/srv/a.img"] });
    assert.deepEqual(t("-z", "-p 2222 -i /k root@db1", "/srv/a.img").args, [
      "dump",
      "--gzip",
      "--identity",
      "/k",
      "root@db1:2222:/srv/a.img",
    ]);
    assert.deepEqual(t("--gzip", "db1", "/a").args, ["dump", "--gzip", "db1:/a"]);
    assert.deepEqual(t("--lzop", "db1", "/a").args, ["dump", "--lzop", "db1:/a"]);
    refused(() => t("db1"), /^usage: ssh_blockdiff_dump \[-z\|--gzip\|--lzop\] SSH_ARGS FILE/);
    refused(() => t("db1", "-z", "/a"), /^usage: ssh_blockdiff_dump/); // -z only first, as the original read it
    refused(() => t("db1", "a.img"), /FILE must be an absolute path on the remote host, not 'a.img'/);
    refused(() => t("-q db1", "/a"), /^ssh_blockdiff_dump: SSH_ARGS '-q db1': option -q is not supported/);
  });

  it("ssh_lvm_dump: dump --lvm-snapshot with 1 MiB blocks and 10G unless BLOCKSIZE, SNAPSHOT_SIZE say otherwise", () => {
    const t = (env: Record<string, string>, ...a: string[]) => cmd(translateSshLvmDump(a, env));
    assert.deepEqual(t({}, "-z", "-p 2222 root@db1", "/dev/vg0/mysql"), {
      args: ["dump", "--gzip", "--lvm-snapshot=10G", "root@db1:2222:/dev/vg0/mysql"],
      env: { BLOCKSIZE: "1048576", LVCREATE_PREFIX: null },
    });
    assert.deepEqual(t({ BLOCKSIZE: "65536", SNAPSHOT_SIZE: "2G" }, "--lzop", "db1", "/dev/vg0/x"), {
      args: ["dump", "--lzop", "--lvm-snapshot=2G", "db1:/dev/vg0/x"],
      env: { LVCREATE_PREFIX: null },
    });
    // empty counts as unset, as `[ ! "$BLOCKSIZE" ]` in the original
    assert.equal(t({ BLOCKSIZE: "", SNAPSHOT_SIZE: "" }, "db1", "/dev/v/l").env?.BLOCKSIZE, "1048576");
    assert.match(t({}, "db1", "/dev/v/l").args.join(" "), /--lvm-snapshot=10G/);
  });

  it("ssh_lvm_dump: LVCREATE_PREFIX wraps the snapshot's creation on this host (--snapshot-wrapper), not lvcreate", () => {
    const prefix = "mysqllock --host=db1 --user=backup --";
    const r = cmd(translateSshLvmDump(["root@db1", "/dev/vg0/mysql"], { LVCREATE_PREFIX: ` ${prefix} ` }));
    assert.deepEqual(r.args, [
      "dump",
      "--lvm-snapshot=10G",
      "--snapshot-wrapper",
      prefix,
      "root@db1:/dev/vg0/mysql",
    ]);
    assert.equal(r.env?.LVCREATE_PREFIX, null, "also put before lvcreate on the remote host");
    assert.ok(
      !cmd(translateSshLvmDump(["db1", "/dev/v/l"], { LVCREATE_PREFIX: " " })).args.includes(
        "--snapshot-wrapper",
      ),
    );
    refused(
      () => translateSshLvmDump(["db1", "/dev/v/l"], { LVCREATE_PREFIX: "sh -c 'x'" }),
      /^ssh_lvm_dump: LVCREATE_PREFIX: --snapshot-wrapper 'sh -c 'x'': ''' would need a shell/,
    );
  });

  it("mysqllock: --user/--host/--port as --mysql-*, CMD at the first word that is not an option", () => {
    const t = (a: string[], env: Record<string, string> = {}, sockets: string[] = []) =>
      cmd(translateMysqllock(a, { env, sockets }));
    assert.deepEqual(
      t(["--user=backup", "--host", "db1", "-port=3307", "--db=x", "ssh_lvm_dump", "-z", "h", "/v"]),
      {
        args: [
          "mysqllock",
          "--mysql-user",
          "backup",
          "--mysql-host",
          "db1",
          "--mysql-port",
          "3307",
          "--",
          "ssh_lvm_dump",
          "-z",
          "h",
          "/v",
        ],
      },
    );
    assert.deepEqual(t(["--", "--weird", "x"]).args, ["mysqllock", "--", "--weird", "x"]);
    // localhost, the original's default, is the Unix socket to MySQL's client library
    assert.deepEqual(t(["true"], { MYSQL_UNIX_PORT: "/s.sock" }).args, [
      "mysqllock",
      "--mysql-socket",
      "/s.sock",
      "--",
      "true",
    ]);
    assert.deepEqual(t(["--host=localhost", "--port=1", "true"]).args, [
      "mysqllock",
      "--mysql-host",
      "127.0.0.1",
      "--mysql-port",
      "1",
      "--",
      "true",
    ]);
    assert.deepEqual(t(["true"]).args, ["mysqllock", "--", "true"], "no socket: blockdiff's default");
    assert.match((translateMysqllock(["--help"]) as { print: string }).print, /^usage: mysqllock /);
    refused(() => t([]), /^mysqllock: no command/);
    refused(() => t(["--user=x"]), /^mysqllock: no command/);
    refused(() => t(["--user"]), /^mysqllock: --user needs a value/);
    refused(() => t(["--before=LOCK TABLES", "true"]), /^mysqllock: --before is not supported/);
    refused(() => t(["--verbose", "true"]), /^mysqllock: unknown option --verbose/);
    refused(() => t(["--port=x", "true"]), /--port must be a number/);
  });

  it("security: mysqllock --password goes to env MYSQL_PWD for blockdiff only, with a warning, never in an argv", () => {
    const r = cmd(
      translateMysqllock(["--password=s3 cret", "--user", "bk", "sh", "-c", "env"], { sockets: [] }),
    );
    assert.ok(!r.args.some((a) => a.includes("s3 cret")), "the password is in blockdiff's arguments");
    assert.deepEqual(r.env, { MYSQL_PWD: "s3 cret" });
    assert.deepEqual(r.restoreAfterStart, ["MYSQL_PWD"]);
    assert.deepEqual(r.secret, ["MYSQL_PWD"]);
    assert.match(r.notes?.[0] ?? "", /^warning: mysqllock --password shows the password in the process list/);
    assert.equal(cmd(translateMysqllock(["true"], { sockets: [] })).env, undefined);
  });
});
