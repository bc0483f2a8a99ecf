/**
 * Retention's bench (`deno task bench --prune [--size MiB] [--days N]`): a daily chain of N generations
 * (default 60) of a SIZE image (default 1 GiB; half of each block random, half zeros, zstd), 1-5% of the
 * blocks rewritten each day, generation g dated N-g days ago, is pruned to --keep-daily 7 --keep-weekly 4
 * --keep-monthly 2. It reports the prune's time, peak RSS and bytes freed, a restore of the newest
 * generation in the same run for scale, and checks that every kept generation restores to the SHA-256 the
 * source had when it was taken. Writes its table into docs/performance.md.
 */
import { spawnSync } from "node:child_process";
import { randomFillSync } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { decodeManifest, encodeManifest } from "../src/format/manifest.ts";
import { sha256OfFile } from "../src/io/file_sha.ts";
import { BINARY, build } from "./build.ts";
import { replaceSection } from "./docs_section.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const opt = (name: string, fallback: number) => Number(args[args.indexOf(name) + 1] || 0) || fallback;
const sizeMiB = opt("--size", 1024), DAYS = opt("--days", 60);
const BS = 16384, blocks = sizeMiB * 64;
if (!fs.existsSync(BINARY)) build();
const hasTime = fs.existsSync("/usr/bin/time");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-bench-prune-"));
const img = path.join(dir, "src.img");

/** Runs blockdiff; wall seconds, peak RSS (MB, with GNU time) and stdout. */
function blockdiff(argv: string[]): { seconds: number; rssMB: number | null; stdout: string } {
  const cmd = hasTime ? ["/usr/bin/time", "-f", "@@%M", BINARY, ...argv] : [BINARY, ...argv];
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd[0], cmd.slice(1), { cwd: dir, encoding: "utf8", maxBuffer: 1 << 26 });
  const seconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (r.status !== 0) throw new Error(`blockdiff ${argv.join(" ")} failed: ${r.stderr}`);
  const m = /@@(\d+)/.exec(r.stderr ?? "");
  return { seconds, rssMB: m ? Number(m[1]) / 1024 : null, stdout: r.stdout };
}

/** A block as a database page might be: half random, half zeros. */
function page(): Uint8Array {
  const b = new Uint8Array(BS);
  randomFillSync(b, 0, BS / 2);
  return b;
}

const dirBytes = () =>
  fs.readdirSync(dir).filter((f) => f.startsWith("db.")).reduce(
    (n, f) => n + fs.statSync(path.join(dir, f)).size,
    0,
  );

try {
  const fd = fs.openSync(img, "w");
  for (let i = 0; i < blocks; i++) fs.writeSync(fd, page());
  fs.closeSync(fd);
  const shas = new Map<number, string>();
  const now = new Date();
  let backupSeconds = 0;
  for (let g = 1; g <= DAYS; g++) {
    if (g > 1) {
      const w = fs.openSync(img, "r+");
      const changed = Math.round(blocks * (0.01 + 0.04 * Math.random()));
      for (let k = 0; k < changed; k++) {
        fs.writeSync(w, page(), 0, BS, Math.floor(Math.random() * blocks) * BS);
      }
      fs.closeSync(w);
    }
    shas.set(g, sha256OfFile(img));
    backupSeconds += blockdiff(["backup", "db", "src.img", "--compress", "zstd"]).seconds;
    // taken at 03:00 on day g of the last DAYS
    const when = new Date(now.getFullYear(), now.getMonth(), now.getDate() - (DAYS - g), 3, 0, 0)
      .toISOString();
    const p = path.join(dir, `db.${g}.json`);
    const m = decodeManifest(fs.readFileSync(p, "utf8"), p);
    fs.writeFileSync(p, encodeManifest({ ...m, startedAt: when, finishedAt: when }));
  }
  const before = dirBytes();
  const restoreNewest = blockdiff(["restore", "db", "out.img", "--force"]).seconds;
  const prune = blockdiff([
    "prune",
    "db",
    "--keep-daily",
    "7",
    "--keep-weekly",
    "4",
    "--keep-monthly",
    "2",
    "--json",
  ]);
  const result = JSON.parse(prune.stdout);
  const kept: number[] = result.generations.filter((g: { keep: boolean }) => g.keep)
    .map((g: { generation: number }) => g.generation).sort((a: number, b: number) => a - b);
  const folds = new Set(
    result.generations.map((g: { foldedInto: number | null }) => g.foldedInto).filter(Boolean),
  );
  for (const g of kept) {
    blockdiff(["restore", "db", "out.img", "-g", String(g), "--force"]);
    if (sha256OfFile(path.join(dir, "out.img")) !== shas.get(g)) throw new Error(`generation ${g} differs`);
  }
  fs.rmSync(path.join(dir, "out.img"));
  const verify = blockdiff(["verify", "db"]).seconds;
  const after = dirBytes();
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(2)} GiB`;
  const table = [
    "| measure | value |",
    "|---|---:|",
    `| chain before | ${DAYS} generations, ${gib(before)} |`,
    `| kept | ${kept.length} generations (${kept.join(", ")}), ${folds.size} folds |`,
    `| prune | ${prune.seconds.toFixed(1)} s, peak RSS ${prune.rssMB?.toFixed(0) ?? "?"} MB |`,
    `| freed (reported / measured) | ${gib(result.bytesFreed)} / ${gib(before - after)} |`,
    `| chain after | ${gib(after)} |`,
    `| restore of the newest generation, before the prune (scale) | ${restoreNewest.toFixed(1)} s |`,
    `| verify of the pruned chain | ${verify.toFixed(1)} s |`,
    `| backups that made the chain (average) | ${(backupSeconds / DAYS).toFixed(1)} s |`,
    `| every kept generation restores to the source's SHA-256 at its time | yes |`,
  ].join("\n");
  const heading = `${now.toISOString().slice(0, 10)}, ${sizeMiB} MiB image, 16 KiB blocks, zstd, ` +
    `1-5% of the blocks rewritten a day, pruned to --keep-daily 7 --keep-weekly 4 --keep-monthly 2`;
  console.log(`\nprune: ${heading}\n\n${table}`);
  if (sizeMiB === 1024 && DAYS === 60) {
    replaceSection(path.join(ROOT, "docs", "performance.md"), "prune", `${heading}:\n\n${table}`);
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
