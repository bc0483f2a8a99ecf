/**
 * Builds the single binary dist/blockdiff with `bun build --compile` (works offline).
 * Worker entry points and modules loaded by URL must be listed here as extra entries (docs/architecture.md, "The runtime adapter").
 * `--bytecode` embeds JavaScriptCore bytecode next to the source, so nothing is parsed at start-up, by the
 * controller, the remote agent or a worker thread (docs/performance.md has the figures).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { WORKER_MODULE } from "../src/engine/worker_pool.ts";
import { S3_CLIENT_MODULE } from "../src/s3/bucket.ts";

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BINARY = path.join(root, "dist", "blockdiff");
/** Modules loaded by URL: the workers, and the S3 client (only loaded when a command names s3://). */
const WORKER_ENTRIES = [WORKER_MODULE, S3_CLIENT_MODULE];

function findBun(): string {
  for (const p of ["node_modules/.bin/bun", "node_modules/bun/bin/bun.exe", "node_modules/bun/bin/bun"]) {
    const full = path.join(root, p);
    if (fs.existsSync(full)) return full;
  }
  throw new Error("bun not found in node_modules: run `npm ci` first");
}

export function build(): void {
  fs.mkdirSync(path.dirname(BINARY), { recursive: true });
  const args = [
    "build",
    "--compile",
    "--bytecode",
    "--format=esm",
    "main.ts",
    ...WORKER_ENTRIES,
    "--outfile",
    BINARY,
  ];
  const r = spawnSync(findBun(), args, { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  if (r.status !== 0) throw new Error(`bun build failed (${r.status ?? r.signal})`);
}

if (import.meta.main) {
  const t = Date.now();
  build();
  console.log(
    `built ${path.relative(root, BINARY)} (${(fs.statSync(BINARY).size / 1e6).toFixed(0)} MB) in ${
      Date.now() - t
    } ms`,
  );
  process.exit(0);
}
