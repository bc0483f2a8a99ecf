/**
 * `deno task install [--prefix DIR]`: builds dist/blockdiff when it is missing or older than the sources,
 * then installs it as DIR/bin/blockdiff (default prefix: $PREFIX, else /usr/local), replacing an older one
 * atomically (a running blockdiff keeps its own copy), and runs it once to show it works.
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { BINARY, build } from "./build.ts";

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
/** What the binary is built from: a change to any of these makes dist/blockdiff out of date. */
const SOURCES = ["main.ts", "src", "agent", "package-lock.json", "scripts/build.ts"];
const USAGE = "usage: deno task install [--prefix DIR]   (default: $PREFIX, else /usr/local)";

function fail(message: string, code = 1): never {
  console.error(`install: ${message}`);
  process.exit(code);
}

function parsePrefix(args: string[]): string {
  let prefix = process.env.PREFIX || "/usr/local";
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      process.exit(0);
    } else if (a === "--prefix" && i + 1 < args.length) prefix = args[++i];
    else if (a.startsWith("--prefix=")) prefix = a.slice("--prefix=".length);
    else if (a === "--prefix") fail(`--prefix needs a directory (${USAGE})`, 2);
    else fail(`unknown argument '${a}' (${USAGE})`, 2);
  }
  if (prefix === "") fail(`--prefix is empty (${USAGE})`, 2);
  return path.resolve(prefix);
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

const prefix = parsePrefix(process.argv.slice(2));
const bin = path.join(prefix, "bin");
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
process.exit(0);
