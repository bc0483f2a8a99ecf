/**
 * `deno task install [--prefix DIR] [--with-original-names]`: builds dist/blockdiff when it is missing or
 * older than the sources, then installs it as DIR/bin/blockdiff (default prefix: $PREFIX, else /usr/local),
 * replacing an older one atomically (a running blockdiff keeps its own copy), and runs it once to show it
 * works. --with-original-names also makes DIR/bin/blockdiff_dump, blockdiff_merge, blockdiff_backup,
 * ssh_blockdiff_dump, ssh_lvm_dump and mysqllock symlinks to it (blockdiff then behaves as that tool):
 * a symlink there is replaced, and so is a hard link of the installed blockdiff; any other file is left
 * alone and nothing is installed (it may be the original tool, which its owner moves away first).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BINARY, build } from "./build.ts";
import { ORIGINAL_NAMES } from "../src/original/names.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
/** What the binary is built from: a change to any of these makes dist/blockdiff out of date. */
const SOURCES = ["main.ts", "src", "agent", "package-lock.json", "scripts/build.ts"];
const USAGE =
  "usage: deno task install [--prefix DIR] [--with-original-names]   (default: $PREFIX, else /usr/local)";

function fail(message: string, code = 1): never {
  console.error(`install: ${message}`);
  process.exit(code);
}

function parseArgs(args: string[]): { prefix: string; originalNames: boolean } {
  let prefix = process.env.PREFIX || "/usr/local";
  let originalNames = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (a === "--with-original-names") originalNames = true;
    else if (a === "--prefix" && i + 1 < args.length) prefix = args[++i];
    else if (a.startsWith("--prefix=")) prefix = a.slice("--prefix=".length);
    else if (a === "--prefix") fail(`--prefix needs a directory (${USAGE})`, 2);
    else fail(`unknown argument '${a}' (${USAGE})`, 2);
  }
  if (prefix === "") fail(`--prefix is empty (${USAGE})`, 2);
  return { prefix: path.resolve(prefix), originalNames };
}

/**
 * Checks that each original name in `bin` is free, a symlink, or a hard link of the installed blockdiff
 * (replaced then); fails before anything is installed otherwise.
 */
function checkOriginalNames(bin: string): void {
  const installed = statOrNull(path.join(bin, "blockdiff"));
  for (const name of ORIGINAL_NAMES) {
    const p = path.join(bin, name);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(p);
    } catch {
      continue; // free (or bin does not exist yet)
    }
    if (st.isSymbolicLink()) continue;
    const ours = st.isFile() && installed !== null && st.ino === installed.ino && st.dev === installed.dev;
    if (!ours) {
      fail(
        `${p} exists and is not a link to blockdiff (the original ${name}?); move it away and run again ` +
          `(nothing was installed)`,
      );
    }
  }
}

function statOrNull(p: string): fs.Stats | null {
  try {
    return fs.statSync(p);
  } catch {
    return null;
  }
}

/** Makes bin/NAME a symlink to blockdiff (relative: the directory can move) for each original name. */
function linkOriginalNames(bin: string): void {
  for (const name of ORIGINAL_NAMES) {
    const p = path.join(bin, name);
    let before: string | null = null;
    try {
      before = fs.readlinkSync(p);
    } catch { /* none, or a hard link */ }
    const temp = path.join(bin, `.${name}.install-${process.pid}`);
    try {
      fs.rmSync(temp, { force: true });
      fs.symlinkSync("blockdiff", temp);
      fs.renameSync(temp, p);
    } catch (err) {
      fs.rmSync(temp, { force: true });
      fail(`cannot link ${p} to blockdiff: ${(err as Error).message}`);
    }
    if (before !== null && before !== "blockdiff") console.log(`${p} pointed to ${before}; now to blockdiff`);
  }
}

/** The newest modification time of a file under `p`. */
function newest(p: string): number {
  const st = fs.statSync(p);
  if (!st.isDirectory()) return st.mtimeMs;
  return Math.max(0, ...fs.readdirSync(p).map((e) => newest(path.join(p, e))));
}

function upToDate(): boolean {
  if (!fs.existsSync(BINARY)) return false;
  const built = fs.statSync(BINARY).mtimeMs;
  return SOURCES.every((s) => newest(path.join(ROOT, s)) <= built);
}

const { prefix, originalNames } = parseArgs(process.argv.slice(2));
const bin = path.join(prefix, "bin");
if (originalNames) checkOriginalNames(bin);
if (upToDate()) console.log(`dist/blockdiff is up to date`);
else {
  console.log("building dist/blockdiff (bun build --compile)...");
  build();
}
const target = path.join(bin, "blockdiff");
const temp = path.join(bin, `.blockdiff.install-${process.pid}`);
try {
  fs.mkdirSync(bin, { recursive: true });
  fs.copyFileSync(BINARY, temp);
  fs.chmodSync(temp, 0o755);
  fs.renameSync(temp, target);
} catch (err) {
  try {
    fs.unlinkSync(temp);
  } catch { /* not created */ }
  fail(`cannot install ${target}: ${(err as Error).message}`);
}
const r = spawnSync(target, ["--version"], { encoding: "utf8" });
if (r.status !== 0) fail(`${target} --version failed: ${r.stderr || r.error?.message}`);
console.log(`installed ${target} (${r.stdout.trim()})`);
if (originalNames) {
  linkOriginalNames(bin);
  // one of them run, to show the names lead to the tools
  const merge = path.join(bin, "blockdiff_merge");
  const m = spawnSync(merge, ["--help"], { encoding: "utf8" });
  if (m.status !== 0 || !m.stdout.startsWith("usage: blockdiff_merge")) {
    fail(`${merge} --help failed: ${m.stderr || m.stdout || m.error?.message}`);
  }
  console.log(`linked ${ORIGINAL_NAMES.join(", ")} in ${bin} to blockdiff`);
}
process.exit(0);
