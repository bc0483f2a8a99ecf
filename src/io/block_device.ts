/** Facts about block devices from /sys and /proc: size, and whether the system uses one (mounted, swap...). */
import * as fs from "node:fs";
import * as path from "node:path";

/** "major:minor" of a device number (glibc's encoding of dev_t). */
export function deviceNumber(rdev: number): string {
  const major = Math.floor(rdev / 256) & 0xfff, minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00);
  return `${major}:${minor}`;
}

/** Regular files know their size; block devices report it in /sys (in 512-byte sectors). */
export function sizeOf(st: fs.Stats): number | null {
  if (st.isFile()) return st.size;
  if (st.isBlockDevice()) {
    try {
      return Number(readSys(`/sys/dev/block/${deviceNumber(st.rdev)}/size`)) * 512;
    } catch {
      return null;
    }
  }
  return null;
}

/**
 * Why writing to the block device `st` would pull the floor from under the system, or null: it (or a
 * partition of it) is mounted, is active swap, or holds another device (LVM, device-mapper, RAID).
 */
export function deviceInUse(st: fs.Stats): string | null {
  const own = deviceNumber(st.rdev);
  const sysDir = `/sys/dev/block/${own}`;
  const devices = [{ number: own, sys: sysDir, name: "it" }];
  for (const e of listDir(sysDir)) {
    const sys = path.join(sysDir, e);
    if (fs.existsSync(path.join(sys, "partition"))) {
      devices.push({ number: readSys(path.join(sys, "dev")), sys, name: `its partition ${e}` });
    }
  }
  const mounts = readMounts(), swaps = readSwaps();
  for (const d of devices) {
    const at = mounts.get(d.number);
    if (at) return `${d.name === "it" ? "it" : d.name} is mounted on ${at}`;
    if (swaps.has(d.number)) return `${d.name} is active swap`;
    const holders = listDir(path.join(d.sys, "holders"));
    if (holders.length) return `${d.name} holds ${holders.map(describeHolder).join(", ")}`;
  }
  return null;
}

/** "major:minor" -> mount point, from /proc/self/mountinfo (also the source device of btrfs-like mounts). */
function readMounts(): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readLines("/proc/self/mountinfo")) {
    const f = line.split(" ");
    const sep = f.indexOf("-");
    if (f.length < 5 || sep < 0) continue;
    const mountPoint = unescape(f[4]);
    if (!out.has(f[2])) out.set(f[2], mountPoint);
    const source = unescape(f[sep + 2] ?? "");
    if (source.startsWith("/")) {
      try {
        const st = fs.statSync(source);
        if (st.isBlockDevice() && !out.has(deviceNumber(st.rdev))) out.set(deviceNumber(st.rdev), mountPoint);
      } catch { /* not a device path */ }
    }
  }
  return out;
}

function readSwaps(): Set<string> {
  const out = new Set<string>();
  for (const line of readLines("/proc/swaps").slice(1)) {
    try {
      const st = fs.statSync(unescape(line.split(/\s+/)[0]));
      if (st.isBlockDevice()) out.add(deviceNumber(st.rdev));
    } catch { /* a swap file, or gone */ }
  }
  return out;
}

/** "dm-0 (vg0-data)" for a device-mapper holder, else its kernel name. */
function describeHolder(name: string): string {
  try {
    return `${name} (${readSys(`/sys/block/${name}/dm/name`)})`;
  } catch {
    return name;
  }
}

function readSys(p: string): string {
  return fs.readFileSync(p, "utf8").trim();
}

function readLines(p: string): string[] {
  try {
    return fs.readFileSync(p, "utf8").split("\n").filter(Boolean);
  } catch {
    return [];
  }
}

function listDir(p: string): string[] {
  try {
    return fs.readdirSync(p);
  } catch {
    return [];
  }
}

/** mountinfo and swaps write spaces and the like as \040-style octal escapes. */
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)));
}
