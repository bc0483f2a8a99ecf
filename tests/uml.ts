/**
 * A User-Mode-Linux guest with device-mapper (this kernel has none): LVM (classic + thin) and sshd, booted
 * once per test file (docs/testing.md, "The test hosts"). The guest's root is this machine's / (hostfs). Its tap
 * network lives in a network namespace made for the run, and the commands under test run in it too, so no
 * traffic leaves that namespace.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { tempDir, waitUntil } from "./helpers.ts";

export const GUEST = "10.201.0.2";
export const VG = "bkvg";

export interface Guest {
  ns: string;
  dir: string;
  clientKey: string;
  /** Runs a shell command in the guest as root; returns stdout (throws on failure). */
  sh(cmd: string): string;
  /** argv that runs `argv` inside the namespace (where the guest is reachable). */
  inNs(argv: string[]): string[];
  stop(): Promise<void>;
}

export function umlAvailable(): boolean {
  return fs.existsSync("/usr/bin/linux.uml") && fs.existsSync("/dev/net/tun") && process.getuid?.() === 0;
}

/** `diskMiB`: the size of the guest's disk, which holds the volume group (the bench wants a large one). */
export async function startGuest(o: { diskMiB?: number } = {}): Promise<Guest> {
  const dir = tempDir("blockdiff-uml-");
  const ns = `bdtest${process.pid}`;
  fs.mkdirSync(path.join(dir, "umlroot", "lib"), { recursive: true });
  fs.mkdirSync(path.join(dir, "umldir"));
  fs.symlinkSync("/usr/lib/uml/modules", path.join(dir, "umlroot", "lib", "modules"));
  execFileSync("cp", ["-a", "/etc/lvm", path.join(dir, "etc-lvm")]);
  const conf = path.join(dir, "etc-lvm", "lvm.conf");
  fs.writeFileSync(
    conf,
    fs.readFileSync(conf, "utf8").replace(
      /^activation \{/m,
      "activation {\n\tudev_sync = 0\n\tudev_rules = 0",
    ),
  );
  fs.writeFileSync(path.join(dir, "empty-bashrc"), "");
  fs.closeSync(fs.openSync(path.join(dir, "disk0.img"), "w"));
  fs.truncateSync(path.join(dir, "disk0.img"), (o.diskMiB ?? 512) * 1024 * 1024);
  for (const k of ["host_key", "client_key"]) {
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", path.join(dir, k)]);
  }
  fs.copyFileSync(path.join(dir, "client_key.pub"), path.join(dir, "authorized_keys"));
  fs.writeFileSync(
    path.join(dir, "sshd_config"),
    `Port 22\nListenAddress ${GUEST}\nHostKey ${dir}/host_key\nPidFile /run/sshd-guest.pid\n` +
      `AuthorizedKeysFile ${dir}/authorized_keys\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n` +
      `KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n`,
  );
  fs.writeFileSync(
    path.join(dir, "init.sh"),
    `#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sysfs /sys; mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /run; mkdir -p /run/sshd /run/lock
mount --bind ${dir}/etc-lvm /etc/lvm; mount --bind ${dir}/empty-bashrc /root/.bashrc
modprobe -d ${dir}/umlroot dm-snapshot; modprobe -d ${dir}/umlroot dm-thin-pool
ip link set lo up; ip link set eth0 up; ip addr add ${GUEST}/24 dev eth0
/usr/sbin/sshd -f ${dir}/sshd_config
exec sleep infinity
`,
    { mode: 0o755 },
  );
  spawnSync("ip", ["netns", "del", ns]);
  for (
    const c of [
      ["ip", "netns", "add", ns],
      ["ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up"],
      ["ip", "netns", "exec", ns, "ip", "tuntap", "add", "dev", "umltap0", "mode", "tap"],
      ["ip", "netns", "exec", ns, "ip", "addr", "add", "10.201.0.1/24", "dev", "umltap0"],
      ["ip", "netns", "exec", ns, "ip", "link", "set", "umltap0", "up"],
    ]
  ) execFileSync(c[0], c.slice(1));
  const uml = spawn("ip", [
    "netns",
    "exec",
    ns,
    "/usr/bin/linux.uml",
    "mem=512M",
    "root=/dev/root",
    "rootfstype=hostfs",
    "rootflags=/",
    "rw",
    `init=${dir}/init.sh`,
    `ubd0=${dir}/disk0.img`,
    "eth0=tuntap,umltap0",
    "con0=null,fd:1",
    "con=null",
    `umid=bd${process.pid}`,
    `uml_dir=${dir}/umldir`,
  ], { stdio: ["ignore", fs.openSync(path.join(dir, "console.log"), "w"), "ignore"], detached: true });
  const exited = new Promise((r) => uml.once("exit", r));
  const sshArgv = (cmd: string) => [
    "ip",
    "netns",
    "exec",
    ns,
    "ssh",
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-o",
    "ConnectTimeout=5",
    "-i",
    path.join(dir, "client_key"),
    `root@${GUEST}`,
    `export LVM_SUPPRESS_FD_WARNINGS=1; ${cmd}`,
  ];
  const sh = (cmd: string) => {
    const [c, ...a] = sshArgv(cmd);
    return execFileSync(c, a, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  };
  await waitUntil(() => (sh("true"), true), "the UML guest's sshd", 60000, 300).catch((err) => {
    throw new Error(`${err.message}\n${fs.readFileSync(path.join(dir, "console.log"), "utf8")}`);
  });
  sh(
    `pvcreate -q /dev/ubda && vgcreate -q ${VG} /dev/ubda && lvcreate -q -y -L 64M -n data ${VG} && ` +
      `lvcreate -q -y -L 96M -T ${VG}/pool && lvcreate -q -y -V 64M -T ${VG}/pool -n thin`,
  );
  return {
    ns,
    dir,
    clientKey: path.join(dir, "client_key"),
    sh,
    inNs: (argv) => ["ip", "netns", "exec", ns, ...argv],
    async stop() {
      try {
        sh(`vgchange -q -an ${VG}; sync; (sleep 0.5; poweroff -f) >/dev/null 2>&1 &`);
      } catch { /* already gone */ }
      const timer = setTimeout(() => {
        try {
          process.kill(-uml.pid!, "SIGKILL");
        } catch { /* gone */ }
      }, 15000);
      await exited;
      clearTimeout(timer);
      spawnSync("ip", ["netns", "del", ns]);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
