/**
 * The Debian packages the tests use (real sshd, MariaDB, the User-Mode-Linux guest with LVM, strace, lzop...).
 * As root on a machine that lacks some, they are installed with apt-get; otherwise the missing ones are
 * named, and the tests that need them are skipped (outside CI).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import process from "node:process";

/** Each package with a file that shows it is installed, and what needs it. */
const PACKAGES: { pkg: string; file: string; for: string }[] = [
  { pkg: "lzop", file: "/usr/bin/lzop", for: "--compress lzop" },
  { pkg: "strace", file: "/usr/bin/strace", for: "syscall fault injection" },
  { pkg: "bsdutils", file: "/usr/bin/script", for: "terminal tests" },
  { pkg: "util-linux", file: "/usr/bin/flock", for: "the run lock" },
  { pkg: "e2fsprogs", file: "/usr/sbin/mkfs.ext4", for: "filesystems on test devices" },
  { pkg: "openssh-server", file: "/usr/sbin/sshd", for: "remote backups" },
  { pkg: "openssh-client", file: "/usr/bin/ssh-keygen", for: "remote backups" },
  { pkg: "mariadb-server", file: "/usr/sbin/mariadbd", for: "mysqllock and hot backups" },
  { pkg: "mariadb-client", file: "/usr/bin/mariadb", for: "mysqllock and hot backups" },
  { pkg: "user-mode-linux", file: "/usr/bin/linux.uml", for: "the LVM guest" },
  { pkg: "kmod", file: "/usr/bin/kmod", for: "the LVM guest" },
  { pkg: "lvm2", file: "/usr/sbin/lvcreate", for: "the LVM guest" },
  { pkg: "thin-provisioning-tools", file: "/usr/sbin/thin_delta", for: "change tracking in the LVM guest" },
  { pkg: "iproute2", file: "/usr/sbin/ip", for: "the LVM guest's network" },
  { pkg: "prometheus", file: "/usr/bin/promtool", for: "checking --metrics files" },
  { pkg: "systemd", file: "/usr/bin/systemd-analyze", for: "checking README's systemd units" },
  // their dependencies ceph-common (ceph, ceph-authtool, radosgw-admin) and ceph-base (monmaptool) come along
  // even with --no-install-recommends
  { pkg: "ceph-mon", file: "/usr/bin/ceph-mon", for: "the S3 tests (a real radosgw)" },
  { pkg: "ceph-osd", file: "/usr/bin/ceph-osd", for: "the S3 tests (a real radosgw)" },
  { pkg: "radosgw", file: "/usr/bin/radosgw", for: "the S3 tests (a real radosgw)" },
  { pkg: "curl", file: "/usr/bin/curl", for: "the S3 tests (a real radosgw)" },
];

export function ensurePrerequisites(): void {
  const missing = PACKAGES.filter((p) => !fs.existsSync(p.file));
  if (!missing.length) return;
  const names = missing.map((p) => p.pkg);
  if (process.getuid?.() !== 0 || !fs.existsSync("/usr/bin/apt-get")) {
    console.error(
      `missing: ${missing.map((p) => `${p.pkg} (${p.for})`).join(", ")}; the tests that need them are ` +
        `skipped (as root, this command installs them)`,
    );
    return;
  }
  console.error(`installing ${names.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  for (const args of [["update", "-qq"], ["install", "-y", "-qq", "--no-install-recommends", ...names]]) {
    const r = spawnSync("apt-get", args, { stdio: ["ignore", "ignore", "inherit"], env });
    if (r.status !== 0) throw new Error(`apt-get ${args[0]} failed (${r.status ?? r.signal})`);
  }
}
