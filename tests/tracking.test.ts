/**
 * Change tracking of thin LVs (thin_delta) in the UML guest: every generation's diff, digest and manifest
 * equal a full scan of the same snapshot (the oracle: a second chain backed up with --full-scan right after,
 * with no write in between), through writes, discards and a grown volume, locally and over SSH; each falls
 * back to a full scan when in doubt; crashes leave no reservation and no orphan snapshot.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, before, describe } from "node:test";
import { BINARY, it, run, start, tempDir, waitUntil } from "./helpers.ts";
import { GUEST, type Guest, startGuest, umlAvailable, VG } from "./uml.ts";

/** Manifest fields a tracked run may have and a full scan may not (or other values). */
const SCAN_FIELDS = [
  "name",
  "startedAt",
  "finishedAt",
  "scan",
  "baseline",
  "blocksRead",
  "chainId",
  "checksum",
];

describe(
  "change tracking of thin LVs in a UML guest",
  {
    skip: (!umlAvailable() || !fs.existsSync(BINARY)) && !process.env.CI && "needs root, UML and the binary",
  },
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

    let lvs = 0;
    /** A new thin LV of `mib` MiB with random content; its name. */
    const thinLv = (mib = 32) => {
      // the 96 MiB pool holds one test's volumes: the previous tests' volumes and baselines go first
      guest.sh(
        `lvs --noheadings -o lv_name ${VG} | awk '$1 ~ /^tt[0-9]/ {print "${VG}/" $1}' | ` +
          `xargs -r lvremove -q -f`,
      );
      const lv = `tt${lvs++}`;
      guest.sh(
        `lvcreate -q -y -V ${mib}M -T ${VG}/pool -n ${lv} && ` +
          `dd if=/dev/urandom of=/dev/${VG}/${lv} bs=1M count=${mib} status=none && sync`,
      );
      return lv;
    };
    /** Runs blockdiff in the guest, on the volume's own host; stdout and stderr (2>&1) and the status. */
    const local = (args: string, env = "") => {
      const out = guest.sh(`cd ${dir} && { ${env} ${BINARY} ${args} 2>&1; echo "status=$?"; }`);
      const m = /status=(\d+)\n?$/.exec(out)!;
      return { out: out.slice(0, m.index), code: Number(m[1]) };
    };
    const ok = (r: { out: string; code: number }, what: string) =>
      assert.equal(r.code, 0, `${what}: ${r.out}`);
    const manifest = (chain: string, g: number) =>
      JSON.parse(fs.readFileSync(path.join(dir, `${chain}.${g}.json`), "utf8"));
    const snapshots = () =>
      guest.sh(`lvs --noheadings -o lv_name,lv_tags ${VG}`).trim().split("\n").map((l) => l.trim());
    const reservationHeld = () => guest.sh(`dmsetup status ${VG}-pool-tpool`).trim().split(/\s+/)[6] !== "-";
    const write = (lv: string, cmd: string) => guest.sh(`${cmd.replaceAll("DEV", `/dev/${VG}/${lv}`)}; sync`);

    /** blockdiff on this host, where the guest is reachable; its arguments for a remote backup of `lv`. */
    const remoteTarget = () => ({ name: "binary", cmd: guest.inNs([BINARY]) });
    const remoteArgs = (chain: string, lv: string) => [
      "backup",
      chain,
      `root@${GUEST}:/dev/${VG}/${lv}`,
      "--lvm-snapshot",
      "-i",
      guest.clientKey,
      "--known-hosts",
      path.join(dir, "kh"),
      "--accept-new-host-key",
    ];

    /** Generation g of `chain` equals generation g of `oracle` (a full scan), but for the scan's own fields. */
    const sameAsFullScan = (chain: string, oracle: string, g: number) => {
      const a = manifest(chain, g), b = manifest(oracle, g);
      for (const f of SCAN_FIELDS) {
        delete a[f];
        delete b[f];
      }
      assert.deepEqual(
        a,
        { ...b, diffFile: a.diffFile, digestFile: a.digestFile },
        `${chain}.${g}: manifest`,
      );
      for (const f of ["diffFile", "digestFile"]) {
        const mine = manifest(chain, g)[f], theirs = manifest(oracle, g)[f];
        assert.ok(
          fs.readFileSync(path.join(dir, mine)).equals(fs.readFileSync(path.join(dir, theirs))),
          `${mine} differs from the full scan's ${theirs}`,
        );
      }
    };

    it("outputs equal a full scan through writes, discards and a grown volume; every generation restores", () => {
      const lv = thinLv();
      const steps: [string, string][] = [
        ["full", ""],
        ["writes", "dd if=/dev/urandom of=DEV bs=16k count=5 seek=33 conv=notrunc status=none"],
        ["a discard", "blkdiscard -o 4194304 -l 2097152 DEV"],
        [
          "writes in new space and a partial pool block; scattered writes (many ranges in one chunk)",
          "dd if=/dev/urandom of=DEV bs=4k count=3 seek=1001 conv=notrunc status=none; " +
          "for b in 3 9 70 71 130 300 301 302 640 1500 1900 2000; do " +
          "dd if=/dev/urandom of=DEV bs=16k count=1 seek=$b conv=notrunc status=none; done",
        ],
        [
          "a grown volume",
          `lvextend -q -L +4M ${VG}/${lv} && dd if=/dev/urandom of=DEV bs=1M count=2 seek=33 conv=notrunc status=none`,
        ],
        [
          "writes after the growth",
          "dd if=/dev/urandom of=DEV bs=64k count=7 seek=100 conv=notrunc status=none",
        ],
      ];
      const sums: string[] = [];
      for (const [g, [what, cmd]] of steps.entries()) {
        if (cmd) write(lv, cmd);
        sums.push(guest.sh(`md5sum /dev/${VG}/${lv}`).split(" ")[0]);
        ok(local(`backup a-${lv} /dev/${VG}/${lv} --lvm-snapshot --compress zstd`), `tracked, ${what}`);
        ok(
          local(`backup b-${lv} /dev/${VG}/${lv} --lvm-snapshot --compress zstd --full-scan`),
          `oracle, ${what}`,
        );
        sameAsFullScan(`a-${lv}`, `b-${lv}`, g + 1);
        const scan = manifest(`a-${lv}`, g + 1).scan;
        const expected = g === 0 ? "full" : what === "a grown volume" ? "full" : "thin_delta";
        assert.equal(scan.method, expected, `generation ${g + 1} (${what}): ${JSON.stringify(scan)}`);
        if (what === "a grown volume") assert.match(scan.reason, /the volume was resized/);
      }
      // reading less: the last tracked run read 7 pool blocks' worth, the full scan everything
      const last = steps.length;
      assert.equal(manifest(`a-${lv}`, last).scan.bytesRead, 7 * 64 * 1024);
      assert.equal(manifest(`b-${lv}`, last).scan.bytesRead, 36 * 1024 * 1024);
      for (const [g, sum] of sums.entries()) {
        ok(local(`restore a-${lv} a-${lv}-${g + 1}.img -g ${g + 1}`), `restore ${g + 1}`);
        assert.equal(
          guest.sh(`md5sum ${dir}/a-${lv}-${g + 1}.img`).split(" ")[0],
          sum,
          `generation ${g + 1}`,
        );
        fs.rmSync(path.join(dir, `a-${lv}-${g + 1}.img`));
      }
      // one baseline per chain, named after its last generation; no reservation held
      assert.deepEqual(
        snapshots().filter((s) => s.includes(`${lv}-bdbase`)).map((s) =>
          s.split(/\s+/)[0].replace(/-[0-9a-f]{8}-/, "-ID-")
        ),
        [`${lv}-bdbase-ID-${last}`, `${lv}-bdbase-ID-${last}`],
      );
      assert.ok(!reservationHeld());
      assert.equal(local(`verify a-${lv}`).code, 0);
    });

    it("over SSH, the agent tracks on the database host; --verify-tracking agrees", async () => {
      const lv = thinLv(16);
      const t = remoteTarget();
      const ssh = ["-i", guest.clientKey, "--known-hosts", path.join(dir, "kh"), "--accept-new-host-key"];
      const remote = (chain: string, extra: string[] = []) =>
        run(t, ["backup", chain, `root@${GUEST}:/dev/${VG}/${lv}`, "--lvm-snapshot", ...ssh, ...extra], {
          cwd: dir,
        });
      for (let g = 1; g <= 3; g++) {
        if (g > 1) {
          write(lv, `dd if=/dev/urandom of=DEV bs=16k count=${g} seek=${g * 50} conv=notrunc status=none`);
        }
        const r = await remote(`ra-${lv}`, ["--verify-tracking"]);
        assert.equal(r.code, 0, r.stderr);
        if (g > 1) assert.match(r.stderr, /KiB of 16\.0 MiB read \(thin_delta\)/);
        const o = await remote(`rb-${lv}`, ["--full-scan"]);
        assert.equal(o.code, 0, o.stderr);
        sameAsFullScan(`ra-${lv}`, `rb-${lv}`, g);
      }
      assert.equal(manifest(`ra-${lv}`, 3).scan.method, "thin_delta");
      assert.ok(!reservationHeld());
      assert.deepEqual(snapshots().filter((s) => s.includes("blockdiff_pending")), []);
    });

    it("fault: falls back to a full scan with a warning: a foreign reservation, a baseline removed, no thin_delta, a classic LV", () => {
      const lv = thinLv(8);
      const chain = `fb-${lv}`;
      const backup = (env = "") => local(`backup ${chain} /dev/${VG}/${lv} --lvm-snapshot`, env);
      ok(backup(), "first");
      write(lv, "dd if=/dev/urandom of=DEV bs=16k count=1 seek=3 conv=notrunc status=none");
      // another program holds the pool's metadata snapshot: left alone
      guest.sh(`dmsetup message ${VG}-pool-tpool 0 reserve_metadata_snap`);
      try {
        const r = backup();
        ok(r, "foreign reservation");
        assert.match(
          r.out,
          /warning: full scan: the metadata snapshot of pool bkvg\/pool is held by another program/,
        );
        assert.ok(reservationHeld(), "a foreign reservation was released");
      } finally {
        guest.sh(`dmsetup message ${VG}-pool-tpool 0 release_metadata_snap`);
      }
      assert.equal(manifest(chain, 2).scan.method, "full");
      // the baseline removed by hand
      guest.sh(`lvremove -q -f ${VG}/${manifest(chain, 2).baseline.snapshot}`);
      const gone = backup();
      ok(gone, "baseline gone");
      assert.match(gone.out, /warning: full scan: the baseline bkvg\/.* is gone/);
      // thin_delta missing, then failing
      // a PATH with every program but thin_delta (the guest's / is this machine's: nothing is renamed)
      const without = path.join(dir, "path-without-thin_delta");
      fs.mkdirSync(without, { recursive: true });
      for (const bin of ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]) {
        if (!fs.existsSync(bin)) continue;
        for (const name of fs.readdirSync(bin)) {
          const link = path.join(without, name);
          if (name !== "thin_delta" && !fs.existsSync(link)) fs.symlinkSync(path.join(bin, name), link);
        }
      }
      const missing = backup(`env PATH=${without}`);
      ok(missing, "thin_delta missing");
      assert.match(missing.out, /warning: full scan: thin_delta is not installed/);
      const fake = path.join(dir, "fake-bin");
      fs.mkdirSync(fake, { recursive: true });
      fs.writeFileSync(
        path.join(fake, "thin_delta"),
        `#!/bin/sh\n[ "$1" = --version ] && exit 0\necho "metadata unreadable" >&2; exit 1\n`,
        { mode: 0o755 },
      );
      const failing = backup(`env PATH=${fake}:$PATH`);
      ok(failing, "thin_delta failing");
      assert.match(failing.out, /warning: full scan: thin_delta failed: .*metadata unreadable/);
      assert.ok(!reservationHeld(), "a failed thin_delta left the reservation");
      const back = backup();
      ok(back, "thin_delta back");
      assert.match(back.out, /\(thin_delta\)/);
      // --full-scan-every
      const every = local(`backup ${chain} /dev/${VG}/${lv} --lvm-snapshot --full-scan-every 7`);
      ok(every, "--full-scan-every");
      assert.match(manifest(chain, 7).scan.reason, /--full-scan-every 7: generation 7/);
      // a classic LV: no tracking, nothing kept
      ok(local(`backup classic /dev/${VG}/data --lvm-snapshot=8M`), "classic 1");
      ok(local(`backup classic /dev/${VG}/data --lvm-snapshot=8M`), "classic 2");
      assert.equal(manifest("classic", 2).scan.reason, "a classic (not thin) LV: no change tracking");
      assert.equal(manifest("classic", 2).baseline, null);
      assert.deepEqual(snapshots().filter((s) => s.startsWith("data-")), []);
    });

    it("fault: a pool fuller than --thin-pool-max-usage is refused before any snapshot", () => {
      const lv = thinLv(4);
      const before = snapshots();
      const r = local(`backup full-${lv} /dev/${VG}/${lv} --lvm-snapshot --thin-pool-max-usage 1`);
      assert.equal(r.code, 1, r.out);
      assert.match(
        r.out.trim(),
        /^blockdiff: thin pool bkvg\/pool is [\d.]+% full \(data\), above 1%: no snapshot taken/,
      );
      assert.deepEqual(snapshots(), before);
      assert.ok(!fs.existsSync(path.join(dir, `full-${lv}.ver`)));
    });

    it("fault: SIGKILL between reserve and release: the next run releases the reservation and tracks", async () => {
      const lv = thinLv(8);
      const chain = `kr-${lv}`;
      ok(local(`backup ${chain} /dev/${VG}/${lv} --lvm-snapshot`), "first");
      write(lv, "dd if=/dev/urandom of=DEV bs=16k count=2 seek=9 conv=notrunc status=none");
      const slow = path.join(dir, "slow-bin");
      fs.mkdirSync(slow, { recursive: true });
      fs.writeFileSync(
        path.join(slow, "thin_delta"),
        `#!/bin/sh\n[ "$1" = --version ] || { touch ${dir}/in-delta; sleep 30; }\nexec /usr/sbin/thin_delta "$@"\n`,
        { mode: 0o755 },
      );
      guest.sh(
        `cd ${dir} && rm -f in-delta && (PATH=${slow}:$PATH setsid ${BINARY} backup ${chain} /dev/${VG}/${lv} ` +
          `--lvm-snapshot >killed.out 2>&1 &) && while [ ! -e in-delta ]; do sleep 0.2; done && ` +
          `pkill -9 -f "^${BINARY} backup ${chain} " && pkill -f "^sleep 30"; true`,
      );
      assert.ok(reservationHeld(), "the killed run held no reservation?");
      const next = local(`backup ${chain} /dev/${VG}/${lv} --lvm-snapshot`);
      ok(next, "after the kill");
      assert.match(next.out, /\(thin_delta\)/);
      assert.ok(!reservationHeld(), "the stale reservation is still held");
      assert.equal(
        guest.sh(`lvs --noheadings -o lv_tags ${VG}/pool`).trim(),
        "",
        "the reservation's tag stayed",
      );
      await waitUntil(() => !snapshots().some((s) => s.includes("blockdiff_pending")), "the watcher", 10000);
      assert.equal(local(`verify ${chain}`).code, 0);
    });

    it("fault: SIGKILL in the middle of the baseline swap (new one kept, old one not yet removed): the next run tracks", () => {
      const lv = thinLv(8);
      const chain = `ks-${lv}`;
      ok(local(`backup ${chain} /dev/${VG}/${lv} --lvm-snapshot`), "first");
      write(lv, "dd if=/dev/urandom of=DEV bs=16k count=2 seek=12 conv=notrunc status=none");
      // the swap's last step, removing the old baseline, held up; the run killed meanwhile
      const slow = path.join(dir, "slow-lvremove");
      fs.mkdirSync(slow, { recursive: true });
      fs.writeFileSync(
        path.join(slow, "lvremove"),
        `#!/bin/sh\ntouch ${dir}/in-swap\nsleep 30 || exit 1\nexec /usr/sbin/lvremove "$@"\n`,
        { mode: 0o755 },
      );
      guest.sh(
        `cd ${dir} && rm -f in-swap && (PATH=${slow}:$PATH setsid ${BINARY} backup ${chain} /dev/${VG}/${lv} ` +
          `--lvm-snapshot >/dev/null 2>&1 &) && while [ ! -e in-swap ]; do sleep 0.2; done && ` +
          `pkill -9 -f "^${BINARY} backup ${chain} " && pkill -f "^sleep 30"; true`,
      );
      assert.equal(fs.readFileSync(path.join(dir, `${chain}.ver`), "utf8"), "2\n");
      assert.equal(
        snapshots().filter((s) => s.includes(`${lv}-bdbase`)).length,
        2,
        "both baselines are there",
      );
      const next = local(`backup ${chain} /dev/${VG}/${lv} --lvm-snapshot`);
      ok(next, "after the kill");
      assert.match(next.out, /\(thin_delta\)/);
      assert.equal(
        snapshots().filter((s) => s.includes(`${lv}-bdbase`)).length,
        1,
        "the old baseline is left",
      );
      assert.equal(local(`verify ${chain}`).code, 0);
    });

    it("fault: SIGKILL between publishing and keeping the new baseline: the next runs go on (full scan, then tracking)", async () => {
      const lv = thinLv(8);
      const chain = `kp-${lv}`;
      const args = remoteArgs(path.join(dir, chain), lv); // strace matches the journal by its whole path
      const first = await run(remoteTarget(), args, { cwd: dir });
      assert.equal(first.code, 0, first.stderr);
      write(lv, "dd if=/dev/urandom of=DEV bs=16k count=2 seek=20 conv=notrunc status=none");
      // the controller killed (strace, on this host) just before it removes the journal: the generation is
      // published, and the agent, waiting for the verdict, hears the connection go: the new snapshot goes
      const strace = ["strace", "-f", "-qq", "-o", "/dev/null", "-P", path.join(dir, `${chain}.journal`)];
      const killer = {
        name: "binary",
        cmd: guest.inNs([...strace, "-e", "inject=unlink:signal=KILL", BINARY]),
      };
      const killed = await run(killer, args, { cwd: dir });
      assert.ok(
        killed.signal === "SIGKILL" || killed.code === 137,
        `not killed: ${killed.code} ${killed.stderr}`,
      );
      assert.equal(
        fs.readFileSync(path.join(dir, `${chain}.ver`), "utf8"),
        "2\n",
        "generation 2 not published",
      );
      const kept = manifest(chain, 2).baseline.snapshot;
      await waitUntil(() => !snapshots().some((s) => s.startsWith(kept)), "the unkept snapshot to go", 20000);
      const r1 = await run(remoteTarget(), args, { cwd: dir });
      assert.equal(r1.code, 0, r1.stderr);
      assert.match(r1.stderr, /warning: .*full scan: the baseline .* is gone/);
      const r2 = await run(remoteTarget(), args, { cwd: dir });
      assert.equal(r2.code, 0, r2.stderr);
      assert.match(r2.stderr, /\(thin_delta\)/);
      assert.equal(snapshots().filter((s) => s.includes(`${lv}-bdbase`)).length, 1, "orphan snapshots");
      assert.equal(local(`verify ${chain}`).code, 0);
    });

    it("fault: the agent killed mid-dump: the run fails, the next one tracks, nothing is left behind", async () => {
      const lv = thinLv(16);
      const t = remoteTarget();
      const chain = `ka-${lv}`;
      const args = remoteArgs(chain, lv);
      const first = await run(t, args, { cwd: dir });
      assert.equal(first.code, 0, first.stderr);
      // 8 MiB of changes: more than a pipe holds, so the agent is still dumping while its output is held
      write(lv, "dd if=/dev/urandom of=DEV bs=16k count=512 conv=notrunc status=none");
      const hold = `sh -c '"$@" | { sleep 5; cat; }' sh`;
      const p = start(t, args, { cwd: dir, env: { SSH_BLOCKDIFF_PREFIX: hold } });
      await waitUntil(() => snapshots().some((s) => s.includes("blockdiff_pending")), "the new snapshot");
      guest.sh(`pkill -9 -f "^/root/.cache/blockdiff/[0-9a-f]*/blockdiff agent dump"; true`);
      const r = await p.done;
      assert.notEqual(r.code, 0, "the run survived its agent");
      await waitUntil(() => !snapshots().some((s) => s.includes("blockdiff_pending")), "the watcher", 15000);
      const next = await run(t, args, { cwd: dir });
      assert.equal(next.code, 0, next.stderr);
      assert.match(next.stderr, /\(thin_delta\)/);
      assert.ok(!reservationHeld());
      // forget-baseline drops it (over SSH as the manifest's source says); the next run reads everything
      const forget = await run(t, ["forget-baseline", chain, ...args.slice(4)], { cwd: dir });
      assert.equal(forget.code, 0, forget.stderr);
      assert.match(forget.stdout.toString(), new RegExp(`removed bkvg/${lv}-bdbase-[0-9a-f]{8}-2`));
      assert.deepEqual(snapshots().filter((s) => s.includes(`${lv}-bdbase`)), []);
      const after = await run(t, args, { cwd: dir });
      assert.equal(after.code, 0, after.stderr);
      assert.match(after.stderr, /warning: .*full scan: the baseline .* is gone/);
    });
  },
);
