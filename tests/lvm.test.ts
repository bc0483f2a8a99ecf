/** Hot backups of LVM volumes through snapshots, in a User-Mode-Linux guest with real device-mapper. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import { expectFailure, it, run, start, type Target, targets, tempDir, waitUntil } from "./helpers.ts";
import { GUEST, type Guest, startGuest, umlAvailable, VG } from "./uml.ts";

describe(
  "LVM snapshots in a UML guest",
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

    const inNs = (t: Target): Target => ({ name: t.name, cmd: guest.inNs(t.cmd) });
    const ssh = () => ["-i", guest.clientKey, "--known-hosts", path.join(dir, "kh"), "--accept-new-host-key"];
    const backupArgs = (name: string, lv: string, extra: string[]) => [
      "backup",
      name,
      `root@${GUEST}:/dev/${VG}/${lv}`,
      ...ssh(),
      ...extra,
    ];
    const backup = (t: Target, name: string, lv: string, extra: string[], env: Record<string, string> = {}) =>
      run(inNs(t), backupArgs(name, lv, extra), { cwd: dir, env });
    const snapshots = () =>
      guest.sh(`lvs --noheadings -o lv_name ${VG}`).split("\n").map((s) => s.trim()).filter((s) =>
        s.includes("bdsnap")
      );
    const md5 = (lv: string) => guest.sh(`md5sum /dev/${VG}/${lv}`).split(" ")[0];
    const fileMd5 = (f: string) => guest.sh(`md5sum ${path.join(dir, f)}`).split(" ")[0];

    const binary = () => targets().find((t) => t.name === "binary") ?? targets()[0];

    for (const t of targets()) {
      it(`(${t.name}) classic snapshot: full + incremental restore to the volume's content; no snapshot left`, async () => {
        guest.sh(`dd if=/dev/urandom of=/dev/${VG}/data bs=1M count=64 status=none; sync`);
        const sums: string[] = [];
        for (let g = 1; g <= 2; g++) {
          if (g === 2) {
            guest.sh(
              `dd if=/dev/urandom of=/dev/${VG}/data bs=64k count=20 seek=100 conv=notrunc status=none; sync`,
            );
          }
          sums.push(md5("data"));
          const r = await backup(t, `c-${t.name}`, "data", [
            "--lvm-snapshot=16M",
            "--compress",
            "zstd",
            "--log",
            "c.log",
          ]);
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(snapshots(), [], "snapshot left behind");
        }
        for (let g = 1; g <= 2; g++) {
          assert.equal(
            (await run(t, ["restore", `c-${t.name}`, `c-${t.name}-${g}.img`, "-g", String(g)], { cwd: dir }))
              .code,
            0,
          );
          assert.equal(fileMd5(`c-${t.name}-${g}.img`), sums[g - 1], `generation ${g}`);
        }
        assert.match(
          fs.readFileSync(path.join(dir, "c.log"), "utf8"),
          /created classic snapshot bkvg\/data-bdsnap-/,
        );
        const m = JSON.parse(fs.readFileSync(path.join(dir, `c-${t.name}.2.json`), "utf8"));
        assert.ok(m.blocksChanged >= 80 && m.blocksChanged <= 81, `changed ${m.blocksChanged}`);
      });
    }

    it("thin LV: snapshot without a size, restored exactly", async () => {
      const t = binary();
      guest.sh(`dd if=/dev/urandom of=/dev/${VG}/thin bs=1M count=8 status=none; sync`);
      const sum = md5("thin");
      const r = await backup(t, "thin", "thin", ["--lvm-snapshot", "--log", "t.log"]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(fs.readFileSync(path.join(dir, "t.log"), "utf8"), /created thin snapshot/);
      assert.deepEqual(snapshots(), []);
      assert.equal((await run(t, ["restore", "thin", "thin.img"], { cwd: dir })).code, 0);
      assert.equal(fileMd5("thin.img"), sum);
    });

    it("fault: stale snapshots of crashed runs are reported", async () => {
      guest.sh(`lvcreate -q -y -s -L 4M -n data-bdsnap-crashed1 ${VG}/data`);
      try {
        const r = await backup(binary(), "stale", "data", ["--lvm-snapshot=16M"]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stderr, /warning: .*stale snapshots of earlier runs on bkvg: data-bdsnap-crashed1/);
      } finally {
        guest.sh(`lvremove -q -f ${VG}/data-bdsnap-crashed1`);
      }
    });

    it("fault: the snapshot is removed after an injected failure (agent output cut: the agent dies of SIGPIPE)", async () => {
      const t = binary();
      const cut = `sh -c '"$@" | head -c 300000' sh`;
      expectFailure(
        await backup(t, "inj", "data", ["--lvm-snapshot=16M"], { SSH_BLOCKDIFF_PREFIX: cut }),
        3,
        /truncated/,
      );
      await waitUntil(() => snapshots().length === 0, "the snapshot to be removed after the failure");
      assert.ok(!fs.existsSync(path.join(dir, "inj.ver")));
    });

    it("fault: the snapshot is removed after the controller gets SIGINT mid-dump", async () => {
      const t = binary();
      // The agent's output is held back for 5 s, so the dump is surely still running when SIGINT comes (a fixed
      // wait raced a 64 MiB dump that can end within it).
      const hold = `sh -c '"$@" | { sleep 5; cat; }' sh`;
      const p = start(inNs(t), backupArgs("sig", "data", ["--lvm-snapshot=16M"]), {
        cwd: dir,
        env: { SSH_BLOCKDIFF_PREFIX: hold },
      });
      await waitUntil(() => snapshots().length > 0, "the snapshot to exist");
      await new Promise((r) => setTimeout(r, 500)); // mid-dump: the agent is blocked on its held-back output
      process.kill(p.child.pid!, "SIGINT");
      const r = await p.done;
      assert.equal(r.code, 130, r.stderr);
      await waitUntil(() => snapshots().length === 0, "the snapshot to be removed after SIGINT");
      assert.ok(!fs.existsSync(path.join(dir, "sig.ver")));
    });

    it("fault: a classic snapshot that overflows during the dump fails the run", async () => {
      const t = binary();
      // a consumer that stalls for 10 s keeps the dump (and the snapshot) open while the origin is rewritten
      const slow = `sh -c '"$@" | (sleep 10; cat)' sh`;
      const p = start(inNs(t), backupArgs("ovf", "data", ["--lvm-snapshot=4M"]), {
        cwd: dir,
        env: { SSH_BLOCKDIFF_PREFIX: slow },
      });
      await waitUntil(() => snapshots().length > 0, "the snapshot to exist");
      guest.sh(`dd if=/dev/urandom of=/dev/${VG}/data bs=1M count=16 status=none conv=notrunc; sync`);
      expectFailure(await p.done, 1, /overflowed during the dump/);
      await waitUntil(() => snapshots().length === 0, "the snapshot to be removed");
      assert.ok(!fs.existsSync(path.join(dir, "ovf.ver")));
    });

    it("dump and backup --snapshot-wrapper: the wrapper on this host holds around the agent's lvcreate; one failing after it fails the run", async () => {
      const t = binary();
      guest.sh(`dd if=/dev/urandom of=/dev/${VG}/data bs=1M count=8 status=none; sync`);
      const sum = md5("data");
      // logs before and after its command (the gate, which returns once the snapshot is made), then exits $status
      const wrap = path.join(dir, "wrap.sh");
      fs.writeFileSync(
        wrap,
        `#!/bin/sh\nlog=$1; status=$2; shift 2\necho before >> "$log"\n"$@"; echo "after $?" >> "$log"\n` +
          `exit $status\n`,
        { mode: 0o755 },
      );
      for (const status of [0, 3]) {
        const log = path.join(dir, `wrap-${status}.log`), out = path.join(dir, `wrap-${status}.diff`);
        const fd = fs.openSync(out, "w");
        const r = await run(inNs(t), [
          "dump",
          `root@${GUEST}:/dev/${VG}/data`,
          ...ssh(),
          "--lvm-snapshot=16M",
          "--snapshot-wrapper",
          `${wrap} ${log} ${status}`,
          "--new-digest",
          path.join(dir, `wrap-${status}.md5`),
        ], { cwd: dir, stdoutFd: fd, env: { VERBOSE: "1" } });
        fs.closeSync(fd);
        assert.equal(fs.readFileSync(log, "utf8"), "before\nafter 0\n");
        await waitUntil(() => snapshots().length === 0, "the snapshot to be removed");
        if (status === 0) {
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stderr, /created classic snapshot bkvg\/data-bdsnap-/);
          const img = path.join(dir, "wrap.img");
          assert.equal((await run(t, ["merge", img], { input: fs.readFileSync(out) })).code, 0);
          assert.equal(fileMd5("wrap.img"), sum);
        } else {
          assert.equal(r.code, 1);
          assert.match(
            r.stderr,
            /blockdiff: --snapshot-wrapper '.*wrap\.sh .* 3' exited with status 3 after the snapshot/,
          );
        }
      }
      // backup takes the same option to the same place
      const log = path.join(dir, "wrap-backup.log");
      const r = await backup(t, "wrapped", "data", [
        "--lvm-snapshot=16M",
        "--snapshot-wrapper",
        `${wrap} ${log} 0`,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(fs.readFileSync(log, "utf8"), "before\nafter 0\n");
      assert.deepEqual(snapshots(), []);
    });
  },
);
