/**
 * The test command (`deno task test`): builds dist/blockdiff, runs every test under Deno against both the
 * source and the binary, and ends with the plain summary line `N passed, N failed`.
 * Extra arguments go to `deno test` (e.g. a test file, or --filter).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { build } from "./build.ts";
import { leaves, scenarioTable } from "./junit.ts";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const junit = path.join(root, "dist", "junit.xml");

if (process.env.BLOCKDIFF_TARGETS !== "source") build();
fs.mkdirSync(path.dirname(junit), { recursive: true });
fs.rmSync(junit, { force: true });
const args = process.argv.slice(2);
const r = spawnSync(
  process.execPath,
  ["test", "-A", `--junit-path=${junit}`, ...(args.length ? args : ["tests/"])],
  { cwd: root, stdio: "inherit" },
);
const all = leaves(fs.existsSync(junit) ? fs.readFileSync(junit, "utf8") : "");
const table = scenarioTable(all);
if (table) console.log(`\nFault and security scenarios:\n${table}\n`);
const count = (o: string) => all.filter((l) => l.outcome === o).length;
if (count("skipped")) console.log(`${count("skipped")} skipped`);
console.log(`${count("passed")} passed, ${count("failed")} failed`);
process.exit(r.status ?? 1);
