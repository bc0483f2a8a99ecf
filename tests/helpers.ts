/** Test helpers: run blockdiff (source under Deno, and the built binary), temp dirs, deterministic images. */
import assert from "node:assert/strict";
import { spawn, spawnSync, type StdioOptions } from "node:child_process";
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import * as test from "node:test";
import { fileURLToPath } from "node:url";
import { testNameFilter } from "./name_filter.ts";

/**
 * node:test's `it`, registering only the tests whose name matches env BLOCKDIFF_TEST_FILTER (a regular
 * expression, case-insensitive), which `deno task test --filter PATTERN` sets: Deno's own --filter sees only
 * the top-level `describe` names.
 */
export const it = ((name: string, ...rest: unknown[]) => {
  const f = process.env.BLOCKDIFF_TEST_FILTER;
  if (f && !testNameFilter(f).test(name)) return;
  return (test.it as (...a: unknown[]) => unknown)(name, ...rest);
}) as typeof test.it;

export const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BINARY = path.join(ROOT, "dist", "blockdiff");

export interface Target {
  name: string;
  cmd: string[];
}

/** How to run blockdiff: from source under Deno, and as the compiled binary when it was built. */
export function targets(): Target[] {
  const all: Target[] = [{
    name: "source",
    cmd: [process.execPath, "run", "-A", path.join(ROOT, "main.ts")],
  }];
  if (fs.existsSync(BINARY)) all.push({ name: "binary", cmd: [BINARY] });
  else if (process.env.CI) {
    throw new Error("dist/blockdiff is missing: run `deno task build` (CI must test it)");
  }
  const only = process.env.BLOCKDIFF_TARGETS ? process.env.BLOCKDIFF_TARGETS.split(",") : null;
  return only ? all.filter((t) => only.includes(t.name)) : all;
}

export interface RunResult {
  code: number | null;
  signal: string | null;
  stdout: Buffer;
  stderr: string;
}

export interface RunOptions {
  cwd?: string;
  env?: Record<string, string>;
  input?: Uint8Array | string;
  /** Extra descriptors: index 5 = old digest, 6 = new digest, as file descriptors opened by the test. */
  fds?: Record<number, number>;
  /** stdout goes to this descriptor instead of being captured. */
  stdoutFd?: number;
}

export function run(t: Target, args: string[], o: RunOptions = {}): Promise<RunResult> {
  const child = start(t, args, o);
  return child.done;
}

export function start(t: Target, args: string[], o: RunOptions = {}) {
  const stdio: StdioOptions = ["pipe", o.stdoutFd ?? "pipe", "pipe"];
  for (const [fd, value] of Object.entries(o.fds ?? {})) {
    while (stdio.length < Number(fd)) stdio.push("ignore");
    (stdio as unknown[])[Number(fd)] = value;
  }
  const child = spawn(t.cmd[0], [...t.cmd.slice(1), ...args], {
    cwd: o.cwd ?? ROOT,
    env: { ...process.env, VERBOSE: "", BLOCKSIZE: "", ...o.env },
    stdio,
  });
  const out: Buffer[] = [];
  let err = "";
  child.stdout?.on("data", (d) => out.push(d));
  child.stderr!.on("data", (d) => err += d);
  child.stdin!.on("error", () => {});
  if (o.input !== undefined) child.stdin!.end(o.input);
  else child.stdin!.end();
  const done = new Promise<RunResult>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }))
  );
  return { child, done };
}

export function tempDir(prefix = "blockdiff-test-"): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function pseudoRandom(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, i + 4 <= size ? i : 0);
    if (i + 4 > size) { for (let j = i; j < size; j++) out[j] = (x >> ((j - i) * 8)) & 0xff; }
  }
  return out;
}

/** Overwrites `count` blocks starting at block `first` of `file` with new pseudo-random data. */
export function changeBlocks(
  file: string,
  blocksize: number,
  first: number,
  count: number,
  seed: number,
): void {
  const fd = fs.openSync(file, "r+");
  fs.writeSync(fd, pseudoRandom(blocksize * count, seed), 0, blocksize * count, first * blocksize);
  fs.closeSync(fd);
}

export function md5(b: Uint8Array): Buffer {
  return createHash("md5").update(b).digest();
}

export function sha256File(p: string): string {
  return createHash("sha256").update(fs.readFileSync(p)).digest("hex");
}

/** The diff and digest the original blockdiff_dump writes, built independently of blockdiff's code. */
export function referenceDump(
  data: Buffer,
  blocksize: number,
  oldDigest: Buffer | null,
): { diff: Buffer; digest: Buffer } {
  const u32 = (n: number) => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(n);
    return b;
  };
  const diff: Buffer[] = [u32(blocksize)], digest: Buffer[] = [u32(blocksize)];
  for (let off = 0, i = 0; off < data.length; off += blocksize, i++) {
    const block = data.subarray(off, off + blocksize);
    const d = md5(block);
    const old = oldDigest?.subarray(4 + i * 16, 4 + i * 16 + 16);
    if (!old || old.length < 16 || !old.equals(d)) {
      diff.push(u32(off % 2 ** 32), u32(Math.floor(off / 2 ** 32)), block);
    }
    digest.push(d);
  }
  return { diff: Buffer.concat(diff), digest: Buffer.concat(digest) };
}

/** Asserts the command failed with one clear stderr line and the expected exit code. */
export function expectFailure(r: RunResult, code: number, pattern: RegExp): void {
  const lines = r.stderr.trim().split("\n").filter((l) => l.trim() !== "");
  if (
    r.code !== code || lines.length !== 1 || !pattern.test(lines[0]) || !lines[0].startsWith("blockdiff: ")
  ) {
    throw new Error(
      `expected exit ${code} and one stderr line matching ${pattern}, got exit ${r.code}, stderr:\n${r.stderr}`,
    );
  }
}

export function listDir(dir: string): string[] {
  return fs.readdirSync(dir).sort();
}

/**
 * The regular files of a directory and their SHA-256, to prove a run changed nothing. A chain's lock file
 * (NAME.lock) and the records of its last runs (NAME.last-backup.json...) are left out: every run that takes
 * the lock writes its holder line there, every backup, prune and verify its outcome.
 */
export function dirSnapshot(dir: string): Record<string, string> {
  return Object.fromEntries(
    listDir(dir).filter((f) =>
      fs.lstatSync(path.join(dir, f)).isFile() && !f.endsWith(".lock") && !/\.last-\w+\.json$/.test(f)
    )
      .map((f) => [f, sha256File(path.join(dir, f))]),
  );
}

/** Whether strace is installed (fault injection into real syscalls: errors, and SIGKILL at the Nth call). */
export function straceAvailable(): boolean {
  return spawnSync("strace", ["-V"]).status === 0;
}

/**
 * `t` run under strace: at the `when`-th call (counted over all threads) of `syscall`, the call fails with
 * `errno` without running, or the process gets SIGKILL there (`kill`), before the call runs.
 */
export function underStrace(
  t: Target,
  o: { syscall: string; when: number; errno?: string; kill?: boolean },
): Target {
  const inject = `${o.syscall}:error=${o.errno ?? "EIO"}${o.kill ? ":signal=KILL" : ""}:when=${o.when}`;
  return {
    name: t.name,
    cmd: ["strace", "-f", "-qq", "-o", "/dev/null", "-e", `inject=${inject}`, ...t.cmd],
  };
}

/**
 * The injection points of a run of `args` for each syscall of `calls` (for underStrace): strace counts a
 * syscall's calls per thread, so `when` N stops the first thread to make its Nth call (for a commit: the main
 * thread; the workers sync a file once each).
 */
export function straceSteps(
  t: Target,
  o: { args: string[]; calls: string[]; cwd: string },
): { syscall: string; when: number }[] {
  const trace = path.join(o.cwd, "calls.trace");
  const r = spawnSync("strace", ["-f", "-qq", "-o", trace, "-e", `trace=${o.calls}`, ...t.cmd, ...o.args], {
    cwd: o.cwd,
  });
  assert.equal(r.status, 0, r.stderr.toString());
  const perThread = new Map<string, number>();
  for (const l of fs.readFileSync(trace, "utf8").split("\n")) {
    const m = /^(\d+) +(\w+)\(/.exec(l);
    if (m && o.calls.includes(m[2])) {
      perThread.set(`${m[2]} ${m[1]}`, (perThread.get(`${m[2]} ${m[1]}`) ?? 0) + 1);
    }
  }
  fs.rmSync(trace);
  return o.calls.flatMap((syscall) => {
    const most = Math.max(
      0,
      ...[...perThread].filter(([k]) => k.startsWith(`${syscall} `)).map(([, n]) => n),
    );
    return Array.from({ length: most }, (_, i) => ({ syscall, when: i + 1 }));
  });
}

/** Polls `check` until it returns true (a check that throws counts as not yet); fails after `ms`. */
export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 30000,
  every = 200,
): Promise<void> {
  const end = Date.now() + ms;
  let last: unknown = null;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ""}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** A loopback port free a moment ago (the kernel's choice), for a server a test starts. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}
