/**
 * Change tracking's bench (`deno task bench --tracking [--runs N]`, root, UML): in the test guest, a thin LV
 * of 1 GiB full of data and a sparse one of 16 GiB virtual size get 1% of their blocks rewritten, and the
 * next generation is taken with thin_delta and, after another 1%, with --full-scan: wall time in the guest
 * and bytes read, same run. Runs blockdiff on the volume's own host (the guest). Writes its table into
 * docs/performance.md.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BINARY, build } from "./build.ts";
import { replaceSection } from "./docs_section.ts";
import { startGuest, umlAvailable, VG } from "../tests/uml.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf("--runs") + 1] || 0) || 3;

if (!umlAvailable()) {
  console.error("the tracking bench needs root and user-mode-linux (the test guest)");
  process.exit(1);
}
if (!fs.existsSync(BINARY)) build();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-bench-tracking-"));
const guest = await startGuest({ diskMiB: 8192 }); // room for 1% rewrites of 16 GiB and their baselines
interface Row {
  name: string;
  seconds: number;
  bytesRead: number;
  changed: number;
  note: string;
}
const rows: Row[] = [];
try {
  guest.sh(`lvcreate -q -y -L 7800M -T ${VG}/bpool`);
  /** Seconds a backup takes in the guest (its own clock), and the manifest it wrote. */
  const timed = (chain: string, lv: string, extra = "") => {
    const out = guest.sh(
      `cd ${dir} && s=$(date +%s.%N) && { ${BINARY} backup ${chain} /dev/${VG}/${lv} --lvm-snapshot ${extra} ` +
        `>/dev/null 2>run.err || { cat run.err; exit 1; }; } && e=$(date +%s.%N) && echo "$s $e" && cat ${chain}.ver`,
    ).trim().split("\n");
    const [s, e] = out[0].split(" ").map(Number);
    return {
      seconds: e - s,
      manifest: JSON.parse(fs.readFileSync(path.join(dir, `${chain}.${out[1]}.json`), "utf8")),
    };
  };
  /** Rewrites 1% of the LV's 16 KiB blocks, picked at random (seeded), and syncs. */
  const changeOnePercent = (lv: string, blocks: number, seed: number) =>
    guest.sh(
      `python3 -c "import os,random
f=os.open('/dev/${VG}/${lv}',os.O_WRONLY); r=random.Random(${seed})
for i in r.sample(range(${blocks}),${Math.round(blocks / 100)}): os.pwrite(f,os.urandom(16384),i*16384)
os.close(f)" && sync`,
    );
  for (
    const c of [{ lv: "big", gib: 1, fill: 1024, runs: RUNS }, { lv: "sparse", gib: 16, fill: 256, runs: 1 }]
  ) {
    const blocks = c.gib * 65536;
    guest.sh(
      `lvcreate -q -y -V ${c.gib}G -T ${VG}/bpool -n ${c.lv} && ` +
        `dd if=/dev/urandom of=/dev/${VG}/${c.lv} bs=1M count=${c.fill} status=none && sync`,
    );
    console.error(`${c.lv}: ${c.gib} GiB (${c.fill} MiB written), generation 1...`);
    timed(c.lv, c.lv);
    const best = { tracked: Infinity, full: Infinity, trackedBytes: 0, fullBytes: 0, changed: 0 };
    for (let run = 0; run < c.runs; run++) {
      changeOnePercent(c.lv, blocks, 10 * run + 1);
      const t = timed(c.lv, c.lv);
      if (t.manifest.scan.method !== "thin_delta") {
        throw new Error(`not tracked: ${JSON.stringify(t.manifest.scan)}`);
      }
      changeOnePercent(c.lv, blocks, 10 * run + 2);
      const f = timed(c.lv, c.lv, "--full-scan");
      console.error(
        `  run ${run + 1}: thin_delta ${t.seconds.toFixed(2)} s, full scan ${f.seconds.toFixed(2)} s`,
      );
      if (t.seconds < best.tracked) {
        [best.tracked, best.trackedBytes] = [t.seconds, t.manifest.scan.bytesRead];
      }
      if (f.seconds < best.full) [best.full, best.fullBytes] = [f.seconds, f.manifest.scan.bytesRead];
      best.changed = t.manifest.blocksChanged;
    }
    const pct = (100 * best.tracked / best.full).toFixed(1);
    rows.push(
      {
        name: `${c.gib} GiB thin LV, 1% changed, thin_delta`,
        seconds: best.tracked,
        bytesRead: best.trackedBytes,
        changed: best.changed,
        note: `${pct}% of the full scan's time`,
      },
      {
        name: `${c.gib} GiB thin LV, 1% changed, --full-scan`,
        seconds: best.full,
        bytesRead: best.fullBytes,
        changed: best.changed,
        note: "",
      },
    );
  }
  const table = [
    "| case | seconds | bytes read | blocks changed | note |",
    "|---|---:|---:|---:|---|",
    ...rows.map((r) =>
      `| ${r.name} | ${r.seconds.toFixed(2)} | ${
        (r.bytesRead / 2 ** 20).toFixed(1)
      } MiB | ${r.changed} | ${r.note} |`
    ),
  ].join("\n");
  const heading =
    `${new Date().toISOString().slice(0, 10)}, in the UML test guest (blockdiff on the volume's host), ` +
    `16 KiB blocks, 64 KiB pool blocks, best of ${RUNS} runs (the 16 GiB case: 1)`;
  console.log(`\nchange tracking: ${heading}\n\n${table}`);
  replaceSection(path.join(ROOT, "docs", "performance.md"), "tracking", `${heading}:\n\n${table}`);
} finally {
  await guest.stop();
  fs.rmSync(dir, { recursive: true, force: true });
}
