/**
 * A thin LV's pool, as change tracking needs it on the host that holds it: the pool's metadata snapshot
 * (one per pool: reserved while
 * `thin_delta` reads it, then released), and `thin_delta` itself. A reservation carries a tag on the pool LV
 * naming this host's boot and process, so a later run can tell its own stale reservation (a killed run's:
 * released at start) from another program's (left alone: a full scan instead).
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import process from "node:process";
import { BlockdiffError } from "../errors.ts";
import { dmName, lvm } from "../snapshot/lvm.ts";

const RESERVATION_TAG = "blockdiff_metasnap";

/** This process's mark on a pool whose metadata snapshot it reserves: boot, PID. */
function ourMark(): string {
  return `${RESERVATION_TAG}_${bootId()}_${process.pid}`;
}

function bootId(): string {
  try {
    return fs.readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim().replaceAll("-", "").slice(0, 12);
  } catch {
    return "noboot";
  }
}

/** Whether the pool's metadata snapshot is held (`dmsetup status`: its 7th field is `-` when not). */
export function metadataSnapHeld(vg: string, pool: string): boolean {
  const f = lvm(["dmsetup", "status", `${dmName(vg, pool)}-tpool`]).trim().split(/\s+/);
  if (f[2] !== "thin-pool" || f.length < 7) {
    throw new BlockdiffError(`unexpected status of pool ${vg}/${pool}`);
  }
  return f[6] !== "-";
}

/**
 * Before a reservation: a held metadata snapshot that a dead blockdiff run left (our tag, its process gone
 * or another boot) is released; one held by another program is reported (null: free to reserve).
 */
export function clearStaleReservation(vg: string, pool: string, poolTags: string[]): string | null {
  const ours = poolTags.filter((t) => t.startsWith(`${RESERVATION_TAG}_`));
  const held = metadataSnapHeld(vg, pool);
  const alive = ours.filter((t) => {
    const [, , boot, pid] = t.split("_");
    return boot === bootId() && isBlockdiff(Number(pid));
  });
  if (held && (ours.length === 0 || alive.length > 0)) {
    return `the metadata snapshot of pool ${vg}/${pool} is held by ${
      alive.length ? `another blockdiff run (pid ${alive[0].split("_")[3]})` : "another program"
    }`;
  }
  if (held) message(vg, pool, "release_metadata_snap");
  for (const t of ours) lvm(["lvchange", "-q", "--deltag", t, `${vg}/${pool}`]);
  return null;
}

function isBlockdiff(pid: number): boolean {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, "latin1").includes("blockdiff");
  } catch {
    return false;
  }
}

/** The thin ids' differences, read under a reserved metadata snapshot that is released on every path. */
export function thinDeltaXml(vg: string, pool: string, ids: { left: number; right: number }): string {
  const mark = ourMark();
  lvm(["lvchange", "-q", "--addtag", mark, `${vg}/${pool}`]);
  try {
    message(vg, pool, "reserve_metadata_snap");
    try {
      return execFileSync(
        "thin_delta",
        [
          "--metadata-snap",
          "--thin1",
          String(ids.left),
          "--thin2",
          String(ids.right),
          `/dev/mapper/${dmName(vg, pool)}_tmeta`,
        ],
        { encoding: "utf8", maxBuffer: 1 << 30, stdio: ["ignore", "pipe", "pipe"] },
      );
    } catch (err) {
      const e = err as { stderr?: string; message?: string };
      throw new BlockdiffError(`thin_delta: ${(e.stderr ?? "").trim().split("\n").at(-1) || e.message}`);
    } finally {
      message(vg, pool, "release_metadata_snap");
    }
  } finally {
    lvm(["lvchange", "-q", "--deltag", mark, `${vg}/${pool}`]);
  }
}

function message(vg: string, pool: string, what: string): void {
  lvm(["dmsetup", "message", `${dmName(vg, pool)}-tpool`, "0", what]);
}

/** Whether `thin_delta` (thin-provisioning-tools) is on PATH. */
export function thinDeltaAvailable(): boolean {
  return (process.env.PATH ?? "").split(":").some((dir) => {
    try {
      fs.accessSync(`${dir || "."}/thin_delta`, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
