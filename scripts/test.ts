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
const { passed, failed } = countLeaves(fs.existsSync(junit) ? fs.readFileSync(junit, "utf8") : "");
console.log(`${passed} passed, ${failed} failed`);
process.exit(r.status ?? 1);

/** Counts leaf test cases (an `it`, not the `describe` around it) in Deno's JUnit report. */
function countLeaves(xml: string): { passed: number; failed: number } {
  const cases = [...xml.matchAll(/<testcase name="([^"]*)"[^>]*>([^]*?)<\/testcase>/g)]
    .map((m) => ({ name: m[1], failed: /<failure/.test(m[2]) }));
  const names = cases.map((c) => c.name);
  const leaves = cases.filter((c) => !names.some((n) => n.startsWith(c.name + " &gt; ")));
  const failed = leaves.filter((c) => c.failed).length;
  return { passed: leaves.length - failed, failed };
}
