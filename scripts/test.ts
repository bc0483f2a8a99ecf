/**
 * The test command (`deno task test`), which runs on a fresh Debian machine as it is: installs the Debian
 * packages the tests use where it can (prerequisites.ts), checks (deno check, lint, fmt), builds
 * dist/blockdiff, runs the unit tests, then every test against both the source and the binary, and ends with
 * the plain summary line `N passed, N failed`. After a whole run it writes the table of fault and security
 * scenarios into docs/testing.md.
 *   deno task test [FILE...] [--filter PATTERN]   some files; only the tests whose name matches PATTERN
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { build } from "./build.ts";
import { replaceSection } from "./docs_section.ts";
import { leaves, scenarioTable } from "./junit.ts";
import { ensurePrerequisites } from "./prerequisites.ts";
import { testNameFilter } from "../tests/name_filter.ts";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
const junit = path.join(root, "dist", "junit.xml");
const deno = process.execPath;

const args = process.argv.slice(2);
const f = args.indexOf("--filter");
const filter = f >= 0 ? args[f + 1] : undefined;
const files = args.filter((_, i) => f < 0 || (i !== f && i !== f + 1));
const whole = files.length === 0 && filter === undefined;

ensurePrerequisites();
if (whole || process.env.CI) {
  const check = spawnSync(deno, ["task", "check"], { cwd: root, stdio: "inherit" });
  if (check.status !== 0) process.exit(check.status ?? 1);
}
if (process.env.BLOCKDIFF_TARGETS !== "source") build();
fs.mkdirSync(path.dirname(junit), { recursive: true });
fs.rmSync(junit, { force: true });
// the unit tests first (seconds), then the rest; --filter also picks the files that can match
const all = files.length
  ? files
  : ["tests/unit/", ...testFiles("tests").filter((p) => !p.startsWith("tests/unit/"))];
const chosen = filter === undefined ? all : all.filter((p) => mentions(p, filter));
if (!chosen.length) {
  console.log(`no test file mentions ${JSON.stringify(filter)}\n0 passed, 0 failed`);
  process.exit(1);
}
const r = spawnSync(deno, ["test", "-A", `--junit-path=${junit}`, ...chosen], {
  cwd: root,
  stdio: "inherit",
  env: { ...process.env, ...(filter !== undefined ? { BLOCKDIFF_TEST_FILTER: filter } : {}) },
});
const results = leaves(fs.existsSync(junit) ? fs.readFileSync(junit, "utf8") : "");
const table = scenarioTable(results);
const count = (o: string) => results.filter((l) => l.outcome === o).length;
if (table) {
  console.log(`\nFault and security scenarios:\n${table}\n`);
  if (whole) {
    const day = new Date().toISOString().slice(0, 10);
    replaceSection(
      path.join(root, "docs", "testing.md"),
      "scenarios",
      `Last whole run: ${day}, ${count("passed")} passed, ${count("failed")} failed.\n\n` +
        table.split("\n").map((l) => `    ${l}`).join("\n"),
    );
  }
}
if (count("skipped")) console.log(`${count("skipped")} skipped`);
console.log(`${count("passed")} passed, ${count("failed")} failed`);
process.exit(r.status ?? 1);

/** The test files under `dir`, relative to the root, in order. */
function testFiles(dir: string): string[] {
  return fs.readdirSync(path.join(root, dir), { recursive: true }).map(String).filter((p) =>
    p.endsWith(".test.ts")
  )
    .map((p) => path.join(dir, p)).sort();
}

/** Whether a file (or a directory's files) could hold a test whose name matches `pattern`: its text does. */
function mentions(p: string, pattern: string): boolean {
  const texts = p.endsWith("/") ? testFiles(p) : [p];
  const re = testNameFilter(pattern);
  return texts.some((t) => re.test(fs.readFileSync(path.join(root, t), "utf8")));
}
