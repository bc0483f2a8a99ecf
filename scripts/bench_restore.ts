/**
 * Restore's bench (`deno task bench --restore [--runs N]`), against the original's way as the yardstick:
 * - the issue's workload: a 1 GiB database-like image (16 KiB blocks, 6000 random bytes then zeros), a full
 *   generation then 9 each rewriting 10% of the blocks at random (2.0 GB of uncompressed diffs). Warm (page
 *   cache holding the chain): the original's merge loop in Perl applied 10 times (the yardstick),
 *   `blockdiff merge` 10 times, `blockdiff restore`, and its parts: restore to /dev/null (reading and
 *   hashing) and writing 1 GiB into a new file (dd). Cold (caches dropped before each run, root): the yardstick and restore, with the
 *   bytes each read from the disk (/proc/PID/io read_bytes).
 * - memory: chains of 1000 generations of a 16 MiB image (each rewriting 10%; none, gzip, zstd), restored and
 *   verified under `ulimit -n 256`, peak RSS.
 * - sparse: a 2 GiB image that is 1% data, restored: blocks allocated, with and without --no-sparse.
 * Best of N runs (default 5: writing into new page cache varies 1-3x from run to run here) for times,
 * highest peak RSS. Writes its table into docs/performance.md (not with
 * `--only PART`).
 */
import { spawnSync } from "node:child_process";
import { createHash, randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import * as zlib from "node:zlib";
import { BINARY, build } from "./build.ts";
import { replaceSection } from "./docs_section.ts";
import { REFERENCE_MERGE } from "./reference_merge.ts";
import { shellQuote } from "../src/ssh/quote.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf("--runs") + 1] || 0) || 5;
/** `--only merge|memory|sparse`: one part, not written into the docs. */
const want = (part: string) => !args.includes("--only") || args[args.indexOf("--only") + 1] === part;
const BS = 16384;
if (!fs.existsSync(BINARY)) build();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-bench-restore-"));
const bd = shellQuote(BINARY);
const canDrop = process.getuid?.() === 0 && fs.existsSync("/proc/sys/vm/drop_caches");

interface Run {
  seconds: number;
  rssMB: number;
  readMB: number;
}

/**
 * Runs a shell command RUNS times (`before` puts back what a run changed; `cold` drops the page cache first):
 * the fastest wall time, the highest peak RSS, and the bytes it read from the disk in the fastest run.
 */
function measure(name: string, cmd: string, o: { before?: () => void; cold?: boolean } = {}): Run {
  let best: Run = { seconds: Infinity, rssMB: 0, readMB: 0 };
  const times: string[] = [];
  for (let i = 0; i < RUNS; i++) {
    o.before?.();
    spawnSync("sync"); // the writeback of what ran before does not land in this run
    // cold: the chain leaves the page cache; the programs themselves stay (117 MB of blockdiff would count)
    if (o.cold) {
      spawnSync("sh", [
        "-c",
        `sync; echo 3 > /proc/sys/vm/drop_caches; cat ${bd} "$(command -v perl)" > /dev/null`,
      ]);
    }
    // the shell reports what it and the children it waited for read (read_bytes) and their peak RSS
    const wrapped = `/usr/bin/time -f '@@%e %M' sh -c ${
      shellQuote(`${cmd} || exit 1; grep read_bytes /proc/$$/io >&2`)
    }`;
    const r = spawnSync("sh", ["-c", wrapped], { cwd: dir, encoding: "utf8", maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`${name} failed: ${r.stderr}`);
    const t = /@@([\d.]+) (\d+)/.exec(r.stderr)!, io = /read_bytes: (\d+)/.exec(r.stderr)!;
    const run = { seconds: Number(t[1]), rssMB: Number(t[2]) / 1024, readMB: Number(io[1]) / 1e6 };
    times.push(run.seconds.toFixed(2));
    const rssMB = Math.max(best.rssMB, run.rssMB);
    best = run.seconds < best.seconds ? { ...run, rssMB } : { ...best, rssMB };
  }
  console.error(`  ${name}: ${times.join(" ")} s`);
  return best;
}

/** A seeded stream of numbers in [0, 1): the same chain on every run. */
function seeded(seed: number): () => number {
  return () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
}

/** A database-like block: 6000 random bytes, then zeros. */
function page(): Buffer {
  const b = Buffer.alloc(BS);
  randomFillSync(b, 0, 6000);
  return b;
}

function backup(name: string, source: string, extra: string[] = []): void {
  const r = spawnSync(BINARY, ["backup", name, source, ...extra], { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`backup failed: ${r.stderr}`);
}

/** Rewrites `fraction` of the blocks of `file` at random. */
function rewrite(file: string, fraction: number, rnd: () => number): void {
  const fd = fs.openSync(file, "r+");
  const blocks = Math.ceil(fs.fstatSync(fd).size / BS);
  for (let i = 0; i < blocks; i++) if (rnd() < fraction) fs.writeSync(fd, page(), 0, BS, i * BS);
  fs.closeSync(fd);
}

/** A chain of `gens` generations of a `blocks`-block image written directly (as the original tools would). */
function syntheticChain(
  name: string,
  o: { blocks: number; gens: number; fraction: number; kind: string },
): void {
  const rnd = seeded(7);
  const image = Array.from({ length: o.blocks }, page);
  const digest = Buffer.alloc(4 + o.blocks * 16);
  digest.writeUInt32LE(BS);
  for (let g = 1; g <= o.gens; g++) {
    const parts: Buffer[] = [digest.subarray(0, 4)];
    for (let i = 0; i < o.blocks; i++) {
      if (g > 1 && rnd() >= o.fraction) continue;
      if (g > 1) image[i] = page();
      createHash("md5").update(image[i]).digest().copy(digest, 4 + i * 16);
      const h = Buffer.alloc(8);
      h.writeUInt32LE(i * BS);
      parts.push(h, image[i]);
    }
    const diff = Buffer.concat(parts);
    const ext = { none: "", gzip: ".gz", zstd: ".zst" }[o.kind];
    // compressed in independent 1 MiB pieces, as blockdiff's own backups are
    const pieces = Array.from({ length: Math.ceil(diff.length / (1 << 20)) }, (_, k) => {
      const piece = diff.subarray(k << 20, (k + 1) << 20);
      // deno-lint-ignore no-explicit-any
      return o.kind === "gzip" ? zlib.gzipSync(piece, { level: 3 }) : (zlib as any).zstdCompressSync(piece);
    });
    const bytes = o.kind === "none" ? diff : Buffer.concat(pieces);
    fs.writeFileSync(path.join(dir, `${name}.${g}${ext}`), bytes);
    fs.writeFileSync(path.join(dir, `${name}.${g}.md5`), digest);
  }
  fs.writeFileSync(path.join(dir, `${name}.ver`), `${o.gens}\n`);
  fs.writeFileSync(path.join(dir, `${name}.img`), Buffer.concat(image));
}

const rows: string[][] = [];
const row = (...cells: string[]) => rows.push(cells);
const s = (r: Run) => r.seconds.toFixed(2);
try {
  console.error(`bench --restore in ${dir}`);
  // the issue's workload
  let diffs = 0; // bytes of the ten diffs
  if (want("merge")) {
    const work = path.join(dir, "work.img");
    fs.writeFileSync(work, Buffer.concat(Array.from({ length: 65536 }, page)));
    const rnd = seeded(1);
    for (let g = 1; g <= 10; g++) {
      if (g > 1) rewrite(work, 0.1, rnd);
      backup("chain", "work.img");
    }
    fs.writeFileSync(path.join(dir, "merge.pl"), REFERENCE_MERGE);
    diffs = Array.from({ length: 10 }, (_, i) => fs.statSync(path.join(dir, `chain.${i + 1}`)).size)
      .reduce((a, b) => a + b);
    const merges = (cmd: string, out: string) =>
      `rm -f ${out}; for g in 1 2 3 4 5 6 7 8 9 10; do ${cmd} ${out} < chain.$g || exit 1; done; sync ${out}`;
    const restore = `rm -f r.img; ${bd} restore chain r.img 2>/dev/null && sync r.img`;
    spawnSync("sh", ["-c", "cat chain.* > /dev/null"], { cwd: dir }); // warm
    const yard = measure("reference merge x10 (Perl), warm", merges("perl merge.pl", "p.img"));
    const merge = measure("blockdiff merge x10, warm", merges(`${bd} merge`, "m.img"));
    const rst = measure("restore, warm", restore);
    const readHash = measure("restore to /dev/null, warm", `${bd} restore chain - 2>/dev/null > /dev/null`);
    const write = measure(
      "dd 1 GiB into a new file",
      "rm -f w.img; dd if=/dev/zero of=w.img bs=16k count=65536 conv=fsync status=none",
    );
    fs.rmSync(path.join(dir, "w.img"));
    for (const f of ["p.img", "m.img", "r.img"]) {
      if (!fs.readFileSync(path.join(dir, f)).equals(fs.readFileSync(work))) throw new Error(`${f} differs`);
    }
    const ratio = (a: Run, b: Run) => `${(a.seconds / b.seconds).toFixed(2)}x`;
    row("reference merge x10 (the original's loop, Perl): yardstick", s(yard), "", "");
    row("blockdiff merge x10", s(merge), `${ratio(yard, merge)} the yardstick`, "");
    row("blockdiff restore (verified)", s(rst), `${ratio(yard, rst)} the yardstick`, rst.rssMB.toFixed(0));
    row(
      "its parts: restore to /dev/null (reading and hashing only)",
      s(readHash),
      "",
      readHash.rssMB.toFixed(0),
    );
    row("its parts: writing 1 GiB into a new file (dd bs=16k, fsync)", s(write), "", "");
    if (canDrop) {
      const yc = measure("reference merge x10, cold", merges("perl merge.pl", "p.img"), { cold: true });
      const rc = measure("restore, cold", restore, { cold: true });
      row("cold: reference merge x10", s(yc), `read ${(yc.readMB / 1074).toFixed(2)}x the image`, "");
      row(
        "cold: blockdiff restore",
        s(rc),
        `${ratio(yc, rc)} the yardstick; read ${(rc.readMB / 1074).toFixed(2)}x the image`,
        rc.rssMB.toFixed(0),
      );
    } else row("cold", "-", "not measured: needs root to drop the page cache", "");
    for (const f of fs.readdirSync(dir)) if (f !== "merge.pl") fs.rmSync(path.join(dir, f));
  }
  // memory: 1000 generations
  if (want("memory")) {
    for (const kind of ["none", "gzip", "zstd"]) {
      syntheticChain(`k${kind}`, { blocks: 1024, gens: 1000, fraction: 0.1, kind });
      const r = measure(
        `restore 1000 generations, ${kind}`,
        `ulimit -n 256; rm -f o.img; ${bd} restore k${kind} o.img 2>/dev/null`,
      );
      if (!fs.readFileSync(path.join(dir, "o.img")).equals(fs.readFileSync(path.join(dir, `k${kind}.img`)))) {
        throw new Error(`1000-generation ${kind} restore differs`);
      }
      const v = measure(
        `verify 1000 generations, ${kind}`,
        `ulimit -n 256; ${bd} verify k${kind} > /dev/null`,
      );
      row(
        `1000 generations of 16 MiB, ${kind}: restore / verify`,
        `${s(r)} / ${s(v)}`,
        "ulimit -n 256",
        [
          r.rssMB.toFixed(0),
          v.rssMB.toFixed(0),
        ].join(" / "),
      );
      for (const f of fs.readdirSync(dir)) if (f.startsWith(`k${kind}`)) fs.rmSync(path.join(dir, f));
    }
  }
  // sparse
  if (want("sparse")) {
    const sparse = path.join(dir, "sparse.img");
    const fd = fs.openSync(sparse, "w");
    fs.ftruncateSync(fd, 2 << 30);
    for (let i = 0; i < 131072; i += 100) fs.writeSync(fd, page(), 0, BS, i * BS);
    fs.closeSync(fd);
    backup("sp", "sparse.img");
    const used = (f: string) => (fs.statSync(path.join(dir, f)).blocks * 512 / 2 ** 20).toFixed(0);
    const sp = measure("restore 2 GiB, 1% data", `rm -f s.img; ${bd} restore sp s.img 2>/dev/null`);
    const spUsed = used("s.img");
    const dense = measure(
      "restore 2 GiB --no-sparse",
      `rm -f d.img; ${bd} restore sp d.img --no-sparse 2>/dev/null`,
    );
    row("2 GiB image, 1% data: restore (sparse)", s(sp), `${spUsed} MiB allocated`, "");
    row("the same with --no-sparse", s(dense), `${used("d.img")} MiB allocated`, "");
  }
  const heading =
    `${new Date().toISOString().slice(0, 10)}, ${os.cpus().length} cores, best of ${RUNS} runs; ` +
    `1 GiB image, 16 KiB blocks, a full generation + 9 rewriting 10% at random (${
      (diffs / 1e9).toFixed(1)
    } GB of diffs)`;
  const table = [
    "| case | seconds | against | peak RSS MB |",
    "|---|---:|---|---:|",
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  console.log(`\n${heading}\n\n${table}`);
  if (!args.includes("--only")) {
    replaceSection(path.join(ROOT, "docs", "performance.md"), "restore", `${heading}:\n\n${table}`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
