/**
 * Benchmark (`deno task bench [--size MiB] [--large] [--runs N]`; `--tracking`: bench_tracking.ts, `--prune`:
 * bench_prune.ts, `--restore`: bench_restore.ts, `--s3`: bench_s3.ts instead):
 * makes its own images in a temp dir and
 * prints a table of seconds, MB/s and peak RSS for each case, with the reference commands measured in the
 * same run. Each case runs N times (default 3): the fastest time and the highest peak RSS are reported, as
 * timings on a shared machine vary from one run to the next. A run at the default size writes its table into
 * docs/performance.md.
 * Runs the built binary (dist/blockdiff; built if missing). Needs GNU time (/usr/bin/time) for peak RSS.
 */
import { spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BINARY, build } from "./build.ts";
import { replaceSection } from "./docs_section.ts";
import { REFERENCE_MERGE } from "./reference_merge.ts";
import { sshdAvailable, startSshd } from "../tests/sshd.ts";
import { shellQuote } from "../src/ssh/quote.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
if (args.includes("--tracking")) {
  await import("./bench_tracking.ts"); // change tracking, in the UML guest: a bench of its own
  process.exit(0);
}
if (args.includes("--restore")) {
  await import("./bench_restore.ts"); // restore and merge against the original's loop, memory, sparse
  process.exit(0);
}
if (args.includes("--s3")) {
  await import("./bench_s3.ts"); // backup, restore and copy with a chain in a real radosgw
  process.exit(0);
}
if (args.includes("--prune")) {
  await import("./bench_prune.ts"); // retention: a 60-day chain pruned
  process.exit(0);
}
const sizeMiB = Number(args[args.indexOf("--size") + 1] || 0) || 1024;
const RUNS = Number(args[args.indexOf("--runs") + 1] || 0) || 3;
const BS = 16384;
const size = sizeMiB * 1024 * 1024;
if (!fs.existsSync(BINARY)) build();
const hasTime = fs.existsSync("/usr/bin/time");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-bench-"));
const img = path.join(dir, "src.img");

interface Row {
  name: string;
  seconds: number;
  bytes: number;
  rssMB: number | null;
  note?: string;
}
const rows: Row[] = [];

/**
 * Runs a shell command RUNS times (`before` puts back what a run changed) and returns its fastest wall
 * seconds and highest peak RSS (MB) of the measured process.
 */
function measure(name: string, cmd: string, bytes: number, before: () => void = () => {}): Row {
  const wrapped = hasTime ? `/usr/bin/time -f '@@%e %M' sh -c ${shellQuote(cmd)}` : cmd;
  const row: Row = { name, seconds: Infinity, bytes, rssMB: null };
  const times: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    before();
    const t = process.hrtime.bigint();
    const r = spawnSync("sh", ["-c", wrapped], { cwd: dir, encoding: "utf8", maxBuffer: 1 << 26 });
    const wall = Number(process.hrtime.bigint() - t) / 1e9;
    if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr}`);
    const m = /@@([\d.]+) (\d+)/.exec(r.stderr ?? "");
    const seconds = m ? Number(m[1]) : wall;
    row.seconds = Math.min(row.seconds, seconds);
    if (m) row.rssMB = Math.max(row.rssMB ?? 0, Number(m[2]) / 1024);
    times.push(seconds.toFixed(2));
  }
  rows.push(row);
  console.error(`  ${name}: ${times.join(" ")} s`);
  return row;
}

/** Removes the generations of chain `name` after `keep` (0: the whole chain), as if they had not been made. */
function resetChain(name: string, keep: number): void {
  for (const f of fs.readdirSync(dir)) {
    const m = new RegExp(`^${name}\\.(\\d+)(\\.|$)`).exec(f);
    if ((m && Number(m[1]) > keep) || (keep === 0 && f === `${name}.ver`)) fs.rmSync(path.join(dir, f));
  }
  if (keep > 0) fs.writeFileSync(path.join(dir, `${name}.ver`), `${keep}\n`);
}

/** A database-like image: every 16 KiB block is 6000 random bytes then zeros (gzip ~2.7:1). */
function makeImage(p: string, bytes: number, seed: number): void {
  const fd = fs.openSync(p, "w");
  const chunk = Buffer.alloc(16 << 20);
  for (let off = 0; off < bytes; off += chunk.length) {
    const n = Math.min(chunk.length, bytes - off);
    chunk.fill(0);
    for (let b = 0; b < n; b += BS) randomFillSync(chunk, b, Math.min(6000, n - b));
    fs.writeSync(fd, chunk, 0, n);
  }
  fs.closeSync(fd);
  void seed;
}

/** Rewrites `fraction` of the blocks of `p` (spread evenly, offset by `seed`). */
function changeBlocks(p: string, fraction: number, seed: number): void {
  const fd = fs.openSync(p, "r+");
  const blocks = Math.ceil(fs.fstatSync(fd).size / BS);
  const step = Math.max(1, Math.round(1 / fraction));
  const b = Buffer.alloc(BS);
  for (let i = seed % step; i < blocks; i += step) {
    randomFillSync(b, 0, 6000);
    fs.writeSync(fd, b, 0, BS, i * BS);
  }
  fs.closeSync(fd);
}

const bd = shellQuote(BINARY);
try {
  console.error(`bench: ${sizeMiB} MiB image in ${dir}`);
  makeImage(img, size, 1);
  spawnSync("sh", ["-c", `cat src.img > /dev/null`], { cwd: dir }); // warm the page cache

  const ref = measure("md5sum (reference, 1 core)", "md5sum src.img", size);
  const full = measure(
    "dump full, no compression",
    `${bd} dump --new-digest g1.md5 src.img > /dev/null`,
    size,
  );
  fs.copyFileSync(img, path.join(dir, "v2.img"));
  changeBlocks(path.join(dir, "v2.img"), 0.01, 3);
  const inc = measure(
    "dump incremental, 1% changed",
    `${bd} dump --old-digest g1.md5 --new-digest g2.md5 v2.img > /dev/null`,
    size,
  );
  const gz = measure("gzip -6 (reference, 1 core)", "gzip -6 < src.img > /dev/null", size);
  const bgz = measure(
    "dump full, gzip (level 3)",
    `${bd} dump -z --new-digest z.md5 src.img > /dev/null`,
    size,
  );
  measure("dump full, zstd (level 3)", `${bd} dump --zstd --new-digest s.md5 src.img > /dev/null`, size);
  measure(
    "backup full to disk, no compression",
    `${bd} backup plain src.img`,
    size,
    () => resetChain("plain", 0),
  );

  // restore: a chain of 10 generations, each rewriting 30% of the blocks
  const work = path.join(dir, "work.img");
  fs.copyFileSync(img, work);
  for (let g = 1; g <= 10; g++) {
    if (g > 1) changeBlocks(work, 0.3, g);
    const r = spawnSync(BINARY, ["backup", "chain", "work.img"], { cwd: dir, encoding: "utf8" });
    if (r.status !== 0) throw new Error(`building the chain failed: ${r.stderr}`);
  }
  fs.rmSync(path.join(dir, "plain.1"));
  fs.writeFileSync(path.join(dir, "merge.pl"), REFERENCE_MERGE);
  const merges = (cmd: string) =>
    `rm -f seq.img; for g in 1 2 3 4 5 6 7 8 9 10; do ${cmd} seq.img < chain.$g || exit 1; done; sync seq.img`;
  const yard = measure("the original's merge loop (Perl) x10: yardstick", merges("perl merge.pl"), size);
  const seq = measure("apply 10 diffs one after another (merge)", merges(`${bd} merge`), size);
  const rst = measure(
    "restore generation 10 (one pass, verified)",
    `${bd} restore chain rst.img && sync rst.img`,
    size,
    () => fs.rmSync(path.join(dir, "rst.img"), { force: true }),
  );
  if (!fs.readFileSync(work).equals(fs.readFileSync(path.join(dir, "rst.img")))) {
    throw new Error("restore differs");
  }
  const diffBytes = fs.readdirSync(dir).filter((f) => /^chain\.\d+$/.test(f))
    .reduce((n, f) => n + fs.statSync(path.join(dir, f)).size, 0);
  measure("verify 10 generations (every diff block hashed)", `${bd} verify chain > /dev/null`, diffBytes)
    .note = `${(diffBytes / 1e9).toFixed(1)} GB of diffs`;

  // remote: the same incremental backup, local and over a loopback sshd (root only)
  let remoteNote: string | null = null;
  if (sshdAvailable()) {
    const sshd = await startSshd();
    try {
      const ssh = `-i ${shellQuote(sshd.clientKey)} --known-hosts ${shellQuote(sshd.knownHosts)}`;
      // What one SSH command costs on this host by itself (handshake, the login shell and its start-up files).
      const opensshTrue = measure(
        "one SSH command (reference: OpenSSH ssh host true)",
        `ssh -o BatchMode=yes -o UserKnownHostsFile=${shellQuote(sshd.knownHosts)} -i ${
          shellQuote(sshd.clientKey)
        } -p ${sshd.port} root@127.0.0.1 true`,
        0,
      );
      const url = shellQuote(`root@127.0.0.1:${sshd.port}:${path.join(dir, "v2.img")}`);
      for (const name of ["lchain", "rchain"]) {
        spawnSync(BINARY, ["backup", name, "src.img"], { cwd: dir }); // generation 1 from the original image
      }
      const local = measure(
        "backup incremental 1%, local",
        `${bd} backup lchain v2.img`,
        size,
        () => resetChain("lchain", 1),
      );
      const rem = measure(
        "backup incremental 1%, remote over loopback SSH",
        `${bd} backup rchain ${url} ${ssh}`,
        size,
        () => resetChain("rchain", 1),
      );
      const shareOfLocal = (remote: Row, local: Row) =>
        `${((local.seconds / remote.seconds) * 100).toFixed(0)}% of local throughput (local + ${
          (remote.seconds - local.seconds).toFixed(2)
        } s)`;
      rem.note = shareOfLocal(rem, local);
      opensshTrue.note = "for the remote rows";
      const localFull = measure(
        "backup full zstd, local",
        `${bd} backup lfull v2.img --compress zstd`,
        size,
        () => resetChain("lfull", 0),
      );
      const remFull = measure(
        "backup full zstd, remote over loopback SSH",
        `${bd} backup rfull ${url} ${ssh} --compress zstd`,
        size,
        () => resetChain("rfull", 0),
      );
      remFull.note = shareOfLocal(remFull, localFull);
    } finally {
      sshd.stop();
    }
  } else remoteNote = "not measured: needs root and /usr/sbin/sshd";

  if (args.includes("--large")) {
    const big = path.join(dir, "big.img");
    fs.closeSync(fs.openSync(big, "w"));
    fs.truncateSync(big, 4 * 1024 ** 3); // sparse: reads are fast, RSS is what is measured
    measure(
      "dump full 4 GiB (sparse), no compression",
      `${bd} dump --new-digest big.md5 big.img > /dev/null`,
      4 * 1024 ** 3,
    );
  }

  const mbps = (r: Row) => r.bytes / 1e6 / r.seconds;
  full.note = `${(mbps(full) / mbps(ref)).toFixed(2)}x md5sum`;
  inc.note = `${(mbps(inc) / mbps(ref)).toFixed(2)}x md5sum`;
  bgz.note = `${(mbps(bgz) / mbps(gz)).toFixed(2)}x gzip -6`;
  seq.note = `${(yard.seconds / seq.seconds).toFixed(2)}x the yardstick`;
  rst.note = `${(yard.seconds / rst.seconds).toFixed(2)}x the yardstick`;

  const cpu = os.cpus()[0]?.model ?? "?";
  const heading = `${sizeMiB} MiB image, ${BS}-byte blocks, ${os.cpus().length} cores (${cpu}), ${
    new Date().toISOString().slice(0, 10)
  }, best of ${RUNS} runs, binary build`;
  const table = [
    "| case | seconds | MB/s | peak RSS MB | note |",
    "|---|---:|---:|---:|---|",
    ...rows.map((r) =>
      `| ${r.name} | ${r.seconds.toFixed(2)} | ${r.bytes ? mbps(r).toFixed(0) : "-"} | ${
        r.rssMB?.toFixed(0) ?? "?"
      } | ${r.note ?? ""} |`
    ),
    ...(remoteNote ? [`| remote dump over loopback SSH | - | - | - | ${remoteNote} |`] : []),
  ].join("\n");
  console.log(`\nblockdiff bench: ${heading}\n\n${table}`);
  if (!args.includes("--size")) {
    // a run at the default size is the one docs/performance.md shows
    replaceSection(path.join(ROOT, "docs", "performance.md"), "bench", `${heading}:\n\n${table}`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
