/**
 * blockdiff invoked under the original tools' names, found on PATH as cron finds them: each calling form
 * writes what the original would, byte for byte (the original's formats: helpers.ts referenceDump), over a
 * real loopback sshd, a real MariaDB and LVM in the UML guest.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import { ORIGINAL_NAMES } from "../src/original/names.ts";
import { shellQuote } from "../src/ssh/quote.ts";
import {
  changeBlocks,
  expectFailure,
  it,
  pseudoRandom,
  referenceDump,
  type RunResult,
  type Target,
  targets,
  tempDir,
} from "./helpers.ts";
import { type MariaDb, mariadbAvailable, PASSWORD, startMariaDb, USER } from "./mariadb.ts";
import { type Sshd, sshdAvailable, startSshd } from "./sshd.ts";
import { GUEST, type Guest, startGuest, umlAvailable, VG } from "./uml.ts";

/**
 * A directory with the six names for target `t`: symlinks to the binary, as `deno task install
 * --with-original-names` makes them; from source, scripts that run Deno with the name as argv[0].
 */
function namesDir(t: Target, dir: string): string {
  const bin = path.join(dir, `bin-${t.name}`);
  fs.mkdirSync(bin, { recursive: true });
  for (const name of ORIGINAL_NAMES) {
    const p = path.join(bin, name);
    fs.rmSync(p, { force: true });
    if (t.name === "binary") fs.symlinkSync(t.cmd[0], p);
    else {
      const argv = t.cmd.map(shellQuote).join(" ");
      fs.writeFileSync(p, `#!/bin/bash\nexec -a ${name} ${argv} "$@"\n`, { mode: 0o755 });
    }
  }
  return bin;
}

/** Runs a shell command line (its redirections are the test's) with `bin` first on PATH. */
function shell(
  bin: string,
  line: string,
  o: { cwd: string; env?: Record<string, string>; wrap?: (argv: string[]) => string[] },
): Promise<RunResult> {
  const argv = (o.wrap ?? ((a) => a))(["sh", "-c", line]);
  const child = spawn(argv[0], argv.slice(1), {
    cwd: o.cwd,
    env: {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      VERBOSE: "",
      BLOCKSIZE: "",
      SNAPSHOT_SIZE: "",
      LVCREATE_PREFIX: "",
      SSH_AUTH_SOCK: "",
      ...o.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: Buffer[] = [];
  let err = "";
  child.stdout.on("data", (d) => out.push(d));
  child.stderr.on("data", (d) => err += d);
  return new Promise((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }))
  );
}

const ok = (r: RunResult) => assert.equal(r.code, 0, r.stderr);
/** A compressed file's content (read from the file: a large input on a pipe could deadlock a sync spawn). */
const gunzip = (file: string) => execFileSync("gzip", ["-dc", file], { maxBuffer: 1 << 28 });
const unlzop = (file: string) => execFileSync("lzop", ["-dc", file], { maxBuffer: 1 << 28 });
const BS = 4096;

describe("the original tools' names", () => {
  let dir = "";
  before(() => dir = tempDir());
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  const read = (f: string) => fs.readFileSync(path.join(dir, f));

  for (const t of targets()) {
    it(`(${t.name}) blockdiff_dump and blockdiff_merge: the original's diffs and digests (-z, --lzop, --blocksize, BLOCKSIZE, fd 5 or not)`, async () => {
      const bin = namesDir(t, dir);
      const sh = (line: string, env: Record<string, string> = {}) => shell(bin, line, { cwd: dir, env });
      const img = `img-${t.name}`, v: Buffer[] = [];
      fs.writeFileSync(path.join(dir, img), pseudoRandom(BS * 30 + 100, 1));
      v.push(read(img));
      // full: FILE, --blocksize; an old digest's block size then wins over --blocksize and BLOCKSIZE
      ok(await sh(`blockdiff_dump --blocksize=${BS} ${img} 6> ${img}.1.md5 > ${img}.1`));
      let want = referenceDump(v[0], BS, null);
      assert.ok(read(`${img}.1`).equals(want.diff), "full diff");
      assert.ok(read(`${img}.1.md5`).equals(want.digest), "full digest");
      changeBlocks(path.join(dir, img), BS, 4, 3, 2);
      v.push(read(img));
      ok(
        await sh(`blockdiff_dump --blocksize=512 < ${img} 5< ${img}.1.md5 6> ${img}.2.md5 > ${img}.2`, {
          BLOCKSIZE: "1024",
        }),
      );
      want = referenceDump(v[1], BS, read(`${img}.1.md5`));
      assert.ok(read(`${img}.2`).equals(want.diff), "incremental diff (stdin, fd 5)");
      assert.ok(read(`${img}.2.md5`).equals(want.digest), "incremental digest");
      assert.equal(read(`${img}.2`).length, 4 + 3 * (8 + BS));
      // -z, --lzop: the same diff compressed
      ok(await sh(`blockdiff_dump -z ${img} 5< ${img}.1.md5 6> ${img}.z.md5 > ${img}.2.gz`));
      assert.ok(gunzip(path.join(dir, `${img}.2.gz`)).equals(want.diff), "-z");
      ok(await sh(`blockdiff_dump --lzop ${img} 5< ${img}.1.md5 6> ${img}.l.md5 > ${img}.2.lzop`));
      assert.ok(unlzop(path.join(dir, `${img}.2.lzop`)).equals(want.diff), "--lzop");
      // BLOCKSIZE without an old digest or --blocksize
      ok(await sh(`blockdiff_dump ${img} 6> ${img}.b.md5 > ${img}.b`, { BLOCKSIZE: "1024" }));
      assert.ok(read(`${img}.b`).equals(referenceDump(v[1], 1024, null).diff), "BLOCKSIZE");
      // merge: the generations in order rebuild the file
      ok(await sh(`blockdiff_merge out-${t.name} < ${img}.1 && blockdiff_merge out-${t.name} < ${img}.2`));
      assert.ok(read(`out-${t.name}`).equals(v[1]), "merge");
    });

    it(`(${t.name}) --help is the tool's own; VERBOSE shows the blockdiff command it runs`, async () => {
      const bin = namesDir(t, dir);
      for (const name of ORIGINAL_NAMES.filter((n) => n !== "blockdiff_backup")) {
        const r = await shell(bin, `${name} --help`, { cwd: dir });
        ok(r);
        assert.match(r.stdout.toString(), new RegExp(`^usage: ${name} `), name);
      }
      fs.writeFileSync(path.join(dir, "v.img"), pseudoRandom(1000, 2));
      const r = await shell(bin, "blockdiff_dump --blocksize=512 -z v.img 6> v.md5 > v.gz", {
        cwd: dir,
        env: { VERBOSE: "1" },
      });
      ok(r);
      assert.match(
        r.stderr,
        /^blockdiff: blockdiff_dump runs: BLOCKSIZE=512 blockdiff dump --gzip \.\/v\.img$/m,
      );
    });

    it(`(${t.name}) bad command lines: one line, exit 2`, async () => {
      const bin = namesDir(t, dir);
      const sh = (line: string) => shell(bin, line, { cwd: dir });
      expectFailure(
        await sh("blockdiff_dump --bogus 6>/dev/null"),
        2,
        /blockdiff_dump: unknown option --bogus \(see blockdiff_dump --help\)/,
      );
      expectFailure(await sh("blockdiff_merge < /dev/null"), 2, /usage: blockdiff_merge FILE < diff/);
      expectFailure(
        await sh("ssh_blockdiff_dump 'root@h uptime' /x 6>/dev/null"),
        2,
        /SSH_ARGS 'root@h uptime': more than one destination/,
      );
      expectFailure(
        await sh("ssh_lvm_dump '-A root@h' /dev/vg/lv 6>/dev/null"),
        2,
        /option -A is not supported/,
      );
      expectFailure(
        await sh("ssh_lvm_dump root@h vg/lv 6>/dev/null"),
        2,
        /LV must be an absolute path on the remote host/,
      );
      expectFailure(await sh("mysqllock --user=x"), 2, /mysqllock: no command/);
    });

    it(`(${t.name}) snapshot-gate stays blockdiff's under an original name (a hard link runs itself again by its name)`, async () => {
      // a hard link's name is also the path the program runs itself again as (a wrapper's gate)
      const bin = namesDir(t, dir);
      const r = await shell(bin, `ssh_lvm_dump snapshot-gate ${dir}/no-such.sock`, { cwd: dir });
      expectFailure(r, 1, /snapshot-gate: cannot reach the run at .*no-such\.sock/);
    });
  }
});

describe(
  "ssh_blockdiff_dump over SSH",
  { skip: !sshdAvailable() && !process.env.CI && "needs root and sshd" },
  () => {
    let sshd: Sshd;
    let dir = "";
    before(async () => {
      sshd = await startSshd();
      dir = tempDir();
    });
    after(() => {
      sshd?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const read = (f: string) => fs.readFileSync(path.join(dir, f));

    for (const t of targets()) {
      it(`(${t.name}) -z, --lzop, BLOCKSIZE, fd 5 or not, a non-default port in SSH_ARGS: the original's files`, async () => {
        const bin = namesDir(t, dir);
        const sh = (line: string, env: Record<string, string> = {}) => shell(bin, line, { cwd: dir, env });
        const src = path.join(dir, `src-${t.name}.img`);
        fs.writeFileSync(src, pseudoRandom(BS * 40 + 77, 1));
        const v1 = fs.readFileSync(src);
        const sshArgs = [
          `-p ${sshd.port} -i ${sshd.clientKey} -o UserKnownHostsFile=${sshd.knownHosts} root@127.0.0.1`,
          `-o Port=${sshd.port} -o IdentityFile=${sshd.clientKey} -o UserKnownHostsFile=${sshd.knownHosts} ` +
          `-l root 127.0.0.1`,
        ];
        const q = shellQuote;
        ok(
          await sh(`ssh_blockdiff_dump ${q(sshArgs[0])} ${q(src)} 6> s1.md5 > s1`, { BLOCKSIZE: String(BS) }),
        );
        let want = referenceDump(v1, BS, null);
        assert.ok(read("s1").equals(want.diff), "full diff");
        assert.ok(read("s1.md5").equals(want.digest), "full digest");
        changeBlocks(src, BS, 5, 3, 2);
        const v2 = fs.readFileSync(src);
        want = referenceDump(v2, BS, read("s1.md5"));
        for (const [i, a] of sshArgs.entries()) {
          ok(await sh(`ssh_blockdiff_dump ${q(a)} ${q(src)} 5< s1.md5 6> s2-${i}.md5 > s2-${i}`));
          assert.ok(read(`s2-${i}`).equals(want.diff), `incremental diff (SSH_ARGS ${i})`);
          assert.ok(read(`s2-${i}.md5`).equals(want.digest), `incremental digest (SSH_ARGS ${i})`);
        }
        ok(await sh(`ssh_blockdiff_dump -z ${q(sshArgs[0])} ${q(src)} 5< s1.md5 6> s2z.md5 > s2.gz`));
        assert.ok(gunzip(path.join(dir, "s2.gz")).equals(want.diff), "-z");
        ok(await sh(`ssh_blockdiff_dump --lzop ${q(sshArgs[0])} ${q(src)} 5< s1.md5 6> s2l.md5 > s2.lzop`));
        assert.ok(unlzop(path.join(dir, "s2.lzop")).equals(want.diff), "--lzop");
        assert.ok(read("s2z.md5").equals(want.digest) && read("s2l.md5").equals(want.digest));
      });

      it(`(${t.name}) security: an ssh option blockdiff would not honour is refused before connecting`, async () => {
        const bin = namesDir(t, dir);
        const before = sshd.commandsStarted();
        const r = await shell(
          bin,
          `ssh_blockdiff_dump '-p ${sshd.port} -o ProxyCommand=nc root@127.0.0.1' /etc/hostname 6>/dev/null`,
          { cwd: dir },
        );
        expectFailure(
          r,
          2,
          /ssh_blockdiff_dump: SSH_ARGS .*: option -o ProxyCommand is not supported \(only -p/,
        );
        // StrictHostKeyChecking=yes against an unknown host: refused as blockdiff always does
        const known = path.join(dir, "empty-kh");
        fs.writeFileSync(known, "");
        const strict = await shell(
          bin,
          `ssh_blockdiff_dump '-p ${sshd.port} -i ${sshd.clientKey} -o UserKnownHostsFile=${known} ` +
            `-o StrictHostKeyChecking=yes root@127.0.0.1' /etc/hostname 6>/dev/null >/dev/null`,
          { cwd: dir },
        );
        expectFailure(strict, 1, /unknown host key/);
        assert.equal(sshd.commandsStarted(), before, "a command ran on the server");
      });
    }
  },
);

describe(
  "mysqllock under its original name",
  { skip: !mariadbAvailable() && !process.env.CI && "needs root and mariadb-server" },
  () => {
    let db: MariaDb;
    let dir = "";
    before(async () => {
      db = await startMariaDb();
      dir = tempDir();
    });
    after(async () => {
      await db?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const read = (f: string) => fs.readFileSync(path.join(dir, f));
    /** A write from another session, giving up after 1 s: "blocked" while the read lock is held. */
    const tryWrite = (out: string) =>
      `mariadb --no-defaults -h127.0.0.1 -P${db.port} -u${USER} -p${shellQuote(PASSWORD)} -e ` +
      `"SET SESSION lock_wait_timeout=1; INSERT INTO app.t VALUES (2)" 2>/dev/null && echo wrote > ${out} ` +
      `|| echo blocked > ${out}`;

    for (const t of targets()) {
      it(`(${t.name}) security: --password for the lock only: CMD runs locked, with fds 5 and 6, without the password; its status is mysqllock's`, async () => {
        const bin = namesDir(t, dir);
        const pw = shellQuote(`--password=${PASSWORD}`);
        const conn = `--user=${USER} ${pw} --host=127.0.0.1 --port=${db.port} --db=app`;
        fs.writeFileSync(path.join(dir, "old"), "old digest");
        // CMD without `--`: sees fd 5 and 6, no MYSQL_PWD; a write from elsewhere blocks meanwhile
        const cmd = `sh -c ${shellQuote(`cat <&5 >&6; env > env-${t.name}; ${tryWrite(`w-${t.name}`)}`)}`;
        const r = await shell(bin, `mysqllock ${conn} ${cmd} 5< old 6> new-${t.name}`, {
          cwd: dir,
          env: { VERBOSE: "1" },
        });
        ok(r);
        assert.equal(read(`new-${t.name}`).toString(), "old digest", "fd 5 or 6 did not reach CMD");
        assert.equal(read(`w-${t.name}`).toString().trim(), "blocked", "a write went through while locked");
        assert.doesNotMatch(
          read(`env-${t.name}`).toString(),
          /MYSQL_PWD|s3cret/,
          "CMD inherited the password",
        );
        assert.match(r.stderr, /warning: mysqllock --password shows the password in the process list/);
        assert.match(r.stderr, /held the MySQL lock for \d+ ms/);
        assert.ok(!r.stderr.includes(PASSWORD), "the password on stderr (VERBOSE line)");
        assert.match(r.stderr, /mysqllock runs: MYSQL_PWD=\.\.\. blockdiff mysqllock --mysql-user bk/);
        const seven = await shell(bin, `mysqllock ${conn} -- sh -c 'exit 7'`, { cwd: dir });
        assert.equal(seven.code, 7, seven.stderr);
        // the password given is the one used
        const wrong = await shell(
          bin,
          `mysqllock --user=${USER} --password=wrong --host=127.0.0.1 --port=${db.port} true`,
          {
            cwd: dir,
          },
        );
        assert.equal(wrong.code, 1);
        assert.match(wrong.stderr, /access denied for user bk/);
      });

      it(`(${t.name}) without --host: the server's Unix socket, as the original's localhost`, async () => {
        const bin = namesDir(t, dir);
        const r = await shell(bin, `mysqllock --user=${USER} true`, {
          cwd: dir,
          env: { MYSQL_UNIX_PORT: path.join(db.dir, "sock"), MYSQL_PWD: PASSWORD, VERBOSE: "1" },
        });
        ok(r);
        assert.match(r.stderr, /blockdiff mysqllock --mysql-user bk --mysql-socket .*\/sock -- true/);
      });
    }
  },
);

describe(
  "ssh_lvm_dump in the UML guest",
  { skip: !umlAvailable() && !process.env.CI && "needs root and UML" },
  () => {
    let guest: Guest;
    let dir = "";
    before(async () => {
      guest = await startGuest();
      dir = tempDir();
    });
    after(async () => {
      await guest?.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    });
    const read = (f: string) => fs.readFileSync(path.join(dir, f));
    const snapshots = () =>
      guest.sh(`lvs --noheadings -o lv_name ${VG}`).split("\n").map((s) => s.trim()).filter((s) =>
        s.includes("bdsnap") || s === "lvm_dump"
      );

    for (const t of targets()) {
      it(`(${t.name}) 1 MiB blocks, SNAPSHOT_SIZE, -z, fd 5; LVCREATE_PREFIX runs here around the snapshot; the LV restored`, async () => {
        const bin = namesDir(t, dir);
        const lv = `/dev/${VG}/data`;
        guest.sh(`dd if=/dev/urandom of=${lv} bs=1M count=8 status=none; sync`);
        const sums = [guest.sh(`md5sum ${lv}`).split(" ")[0]];
        const wrap = path.join(dir, "wrap.sh"), log = path.join(dir, `wrap-${t.name}.log`);
        fs.writeFileSync(
          wrap,
          `#!/bin/sh\nlog=$1; shift\necho before >> "$log"\n"$@"; echo "after $?" >> "$log"\n`,
          {
            mode: 0o755,
          },
        );
        const sshArgs = shellQuote(
          `-i ${guest.clientKey} -o UserKnownHostsFile=${dir}/kh -o StrictHostKeyChecking=accept-new root@${GUEST}`,
        );
        const sh = (line: string, env: Record<string, string> = {}) =>
          shell(bin, line, { cwd: dir, env, wrap: (a) => guest.inNs(a) });
        ok(
          await sh(`ssh_lvm_dump ${sshArgs} ${lv} 6> l1.md5 > l1`, {
            SNAPSHOT_SIZE: "16M",
            LVCREATE_PREFIX: `${wrap} ${log}`,
          }),
        );
        assert.equal(
          fs.readFileSync(log, "utf8"),
          "before\nafter 0\n",
          "LVCREATE_PREFIX did not wrap the snapshot",
        );
        assert.equal(read("l1.md5").readUInt32LE(0), 1048576, "not the original's 1 MiB blocks");
        assert.equal(read("l1.md5").length, 4 + 64 * 16, "the 64 MiB LV in 1 MiB blocks");
        assert.deepEqual(snapshots(), [], "snapshot left behind");
        guest.sh(`dd if=/dev/urandom of=${lv} bs=64k count=4 seek=40 conv=notrunc status=none; sync`);
        sums.push(guest.sh(`md5sum ${lv}`).split(" ")[0]);
        ok(
          await sh(`ssh_lvm_dump -z ${sshArgs} ${lv} 5< l1.md5 6> l2.md5 > l2.gz`, { SNAPSHOT_SIZE: "16M" }),
        );
        assert.deepEqual(snapshots(), [], "snapshot left behind");
        const diff2 = gunzip(path.join(dir, "l2.gz"));
        assert.equal(diff2.length, 4 + 1 * (8 + 1048576), "one 1 MiB block changed");
        fs.writeFileSync(path.join(dir, `img-${t.name}`), "");
        ok(await sh(`blockdiff_merge img-${t.name} < l1`));
        assert.equal(guest.sh(`md5sum ${dir}/img-${t.name}`).split(" ")[0], sums[0]);
        ok(await sh(`gzip -dc l2.gz | blockdiff_merge img-${t.name}`));
        assert.equal(guest.sh(`md5sum ${dir}/img-${t.name}`).split(" ")[0], sums[1]);
      });
    }
  },
);
