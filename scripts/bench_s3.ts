/**
 * Object storage's bench (`deno task bench --s3 [--size MiB] [--runs N]`): a SIZE image (default 1 GiB; half
 * of each block random, half zeros) backed up, restored and copied with a local chain and with a chain in a
 * real Ceph radosgw on this machine (tests/rgw.ts; loopback, in-memory OSD), in the same run so the ratios
 * mean something on a noisy machine. Each case runs N times (default 3): the fastest time and the highest
 * peak RSS are reported. Also a local run's start-up (`list` of a local chain), which loading the S3 client
 * only for s3:// locations keeps as it was. Writes its table into docs/performance.md at the default size.
 */
import { spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { rgwAvailable, startRgw } from "../tests/rgw.ts";
import { BINARY, build } from "./build.ts";
import { replaceSection } from "./docs_section.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => Number(args[args.indexOf(name) + 1] || 0) || fallback;
const sizeMiB = opt("--size", 1024), RUNS = opt("--runs", 3);
const BS = 16384;
if (!rgwAvailable()) throw new Error("needs root and radosgw (apt-get install ceph-mon ceph-osd radosgw)");
if (!fs.existsSync(BINARY)) build();
const hasTime = fs.existsSync("/usr/bin/time");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-bench-s3-"));
// each S3 run writes a chain of its own into the in-memory OSD: room for all of them
const rgw = await startRgw({ memstoreBytes: (RUNS * 2 + 2) * sizeMiB * 2 ** 20 + 2 ** 30 });
const env = { ...process.env, ...rgw.env, XDG_CACHE_HOME: path.join(dir, "cache") };

interface Row {
  name: string;
  seconds: number;
  rssMB: number | null;
}

/** Runs blockdiff RUNS times (`before(i)` prepares run i and may give other arguments); fastest, highest RSS. */
function measure(name: string, argv: (i: number) => string[], before: (i: number) => void = () => {}): Row {
  const row: Row = { name, seconds: Infinity, rssMB: null };
  const times: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    before(i);
    const cmd = hasTime ? ["/usr/bin/time", "-f", "@@%M", BINARY, ...argv(i)] : [BINARY, ...argv(i)];
    const t = process.hrtime.bigint();
    const r = spawnSync(cmd[0], cmd.slice(1), { cwd: dir, env, encoding: "utf8", maxBuffer: 1 << 26 });
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr}`);
    const m = /@@(\d+)/.exec(r.stderr ?? "");
    row.seconds = Math.min(row.seconds, seconds);
    if (m) row.rssMB = Math.max(row.rssMB ?? 0, Number(m[1]) / 1024);
    times.push(seconds.toFixed(2));
  }
  console.error(`  ${name}: ${times.join(" ")} s`);
  return row;
}

function makeImage(p: string, bytes: number): void {
  const fd = fs.openSync(p, "w"), block = new Uint8Array(1 << 20);
  try {
    for (let at = 0; at < bytes; at += block.length) {
      block.fill(0);
      for (let b = 0; b < block.length; b += BS) randomFillSync(block, b, BS / 2);
      fs.writeSync(fd, block, 0, Math.min(block.length, bytes - at), at);
    }
  } finally {
    fs.closeSync(fd);
  }
}

try {
  await rgw.createBucket("bench");
  const bytes = sizeMiB * 2 ** 20;
  makeImage(path.join(dir, "src.img"), bytes);
  const rmLocal = () => {
    for (const f of fs.readdirSync(dir)) {
      if (f.startsWith("db.") || f.endsWith(".out")) fs.rmSync(path.join(dir, f));
    }
  };
  const rows: Row[] = [];
  const backupArgs = ["src.img", "--block-size", String(BS), "--compress", "zstd"];
  rows.push(measure("backup, full, to a local directory", () => ["backup", "db", ...backupArgs], rmLocal));
  rows.push(measure("backup, full, into S3 (streamed multipart upload)", (i) => [
    "backup",
    `s3://bench/full${i}/db`,
    ...backupArgs,
  ]));
  const rmOut = () => fs.rmSync(path.join(dir, "r.out"), { force: true });
  rows.push(measure("restore, from the local chain", () => ["restore", "db", "r.out"], rmOut));
  rows.push(
    measure(
      "restore, from S3 (ranged GETs, 4 in flight)",
      () => ["restore", "s3://bench/full0/db", "r.out"],
      rmOut,
    ),
  );
  rows.push(measure("verify, of the local chain", () => ["verify", "db"]));
  rows.push(measure("verify, of the S3 chain", () => ["verify", "s3://bench/full0/db"]));
  rows.push(measure("copy of the local chain into S3", (i) => ["copy", "db", `s3://bench/copy${i}/db`]));
  const startup = measure("start-up of a local run (list of the local chain)", () => ["list", "db"]);
  rows.push(startup);
  const [, , local, s3] = rows;
  const mbs = (r: Row) => (bytes / r.seconds / 1e6).toFixed(0);
  const table = [
    "| case | seconds | MB/s | peak RSS MB |",
    "|---|---:|---:|---:|",
    ...rows.map((r) =>
      `| ${r.name} | ${r.seconds.toFixed(r.seconds < 1 ? 3 : 2)} | ${r === startup ? "-" : mbs(r)} | ${
        r.rssMB?.toFixed(0) ?? "?"
      } |`
    ),
    `| restore from S3 / from the local chain | ${(s3.seconds / local.seconds).toFixed(2)}x | | |`,
  ].join("\n");
  const heading =
    `${new Date().toISOString().slice(0, 10)}, ${sizeMiB} MiB image (half of each 16 KiB block ` +
    `random), zstd, best of ${RUNS}; radosgw 16.2 on this machine (loopback, in-memory OSD)`;
  console.log(`\nS3: ${heading}\n\n${table}`);
  if (sizeMiB === 1024) {
    replaceSection(path.join(ROOT, "docs", "performance.md"), "s3", `${heading}:\n\n${table}`);
  }
} finally {
  await rgw.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
