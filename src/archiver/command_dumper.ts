/**
 * The Dumper of `blockdiff_backup NAME CMD ARGS...`: a command of the user's writes the generation, as under
 * the original driver: the previous digest on its descriptor 5 (when there is one), the new digest on 6, the
 * diff on stdout, stdin empty, stderr ours. What it writes is copied into the generation's temporary files
 * and, once it exited 0, checked before anything is published (command_output.ts): the chain's own commit
 * rules then apply (archiver/backup.ts). A command that fails or is killed publishes nothing.
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import type { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream";
import { onCleanup } from "../cleanup.ts";
import type { Compression } from "../compress/codec.ts";
import type { BlockHasher } from "../engine/hasher.ts";
import { createParallelism } from "../engine/parallel.ts";
import { BlockdiffError, describeIoError } from "../errors.ts";
import { DIGEST_SIZE, HEADER_SIZE } from "../format/digest.ts";
import type { Chain } from "../store/chain.ts";
import { viewOf } from "../store/generations.ts";
import type { Dumper, DumpOutcome, DumpRequest } from "./backup.ts";
import { checkCommandOutput } from "./command_output.ts";
import { lastBlockLength } from "./last_block.ts";

/** The command exited non-zero, was killed, or could not be started: its status is the run's exit status. */
export class CommandFailed extends BlockdiffError {
  constructor(message: string, readonly status: number) {
    super(message);
  }
}

export interface CommandDumperOptions {
  /** CMD as given (messages) and the file it was found as (commandPath.ts). */
  command: string;
  file: string;
  args: string[];
  chain: Chain;
  /** The chain's last generation (0: none): the new one is the next. */
  previous: number;
  /** The compression the command's options ask for (the diff is read back through it). */
  compression: Compression;
}

export function commandDumper(o: CommandDumperOptions): Dumper {
  const line = [o.command, ...redacted(o.args)].join(" ");
  let child: ChildProcess | null = null;
  return {
    description: line,
    recorded: `blockdiff_backup: ${line}`,
    size: null,
    async dump(req: DumpRequest): Promise<DumpOutcome> {
      const what = (f: string) => `the ${f} ${o.command} wrote`;
      child = await runCommand(o, req);
      const checked = await withHasher((hasher) =>
        checkCommandOutput({
          diff: reopen(req.diffOut),
          digest: reopen(req.digestOut),
          compression: o.compression,
          old: req.oldDigest,
          hasher,
          diffWhat: what(`diff (${path.basename(o.chain.diffPath(o.previous + 1, o.compression))})`),
          digestWhat: what(`digest (${path.basename(o.chain.digestPath(o.previous + 1))})`),
        })
      );
      const { blocks: n, blocksize: bs } = checked;
      const last = n === 0 ? 0 : checked.lastLength ??
        await lastBlockLength({ chain: o.chain, view: viewOf(o.chain, o.previous), from: o.previous, n, bs });
      const size = n === 0 ? 0 : (n - 1) * bs + last;
      return {
        bytesRead: size,
        blocks: n,
        blocksChanged: checked.records,
        lastBlockLength: last,
        scanned: { blocks: n, bytes: size },
        blocksize: bs,
      };
    },
    close() {
      if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return Promise.resolve();
    },
  };
}

/**
 * Runs the command with the chain's descriptors and copies its outputs into the request's files (ended
 * and synced). Rejects with CommandFailed when it does not exit 0; it is then left to run no longer.
 */
async function runCommand(o: CommandDumperOptions, req: DumpRequest): Promise<ChildProcess> {
  let oldFd: number | null = null;
  if (req.oldDigestPath !== null) {
    try {
      oldFd = fs.openSync(req.oldDigestPath, "r");
    } catch (err) {
      throw describeIoError(`opening ${req.oldDigestPath}`, err);
    }
  }
  let child: ChildProcess;
  try {
    const [file, args] = shellScript(o.file) ? ["/bin/sh", [o.file, ...o.args]] : [o.file, o.args];
    child = spawn(file, args, {
      stdio: ["ignore", "pipe", "inherit", "ignore", "ignore", oldFd ?? "ignore", "pipe"],
    });
  } catch (err) {
    throw new CommandFailed(describeIoError(`cannot run ${o.command}`, err).message, 126);
  } finally {
    if (oldFd !== null) fs.closeSync(oldFd); // the child has its own copy
  }
  const unregister = onCleanup(() => child.kill("SIGTERM"));
  try {
    const exited = new Promise<number>((resolve, reject) => {
      child.on("error", (err: NodeJS.ErrnoException) =>
        reject(
          err.code === "ENOENT"
            ? new CommandFailed(`${o.command}: command not found`, 127)
            : new CommandFailed(describeIoError(`cannot run ${o.command}`, err).message, 126),
        ));
      child.on("exit", (code, signal) => {
        if (code === 0) return resolve(0);
        const status = code ?? 128 + (os.constants.signals[signal as NodeJS.Signals] ?? 15);
        reject(
          new CommandFailed(
            `${o.command} ${code !== null ? `failed (exit ${code})` : `was killed by ${signal}`}: ` +
              `nothing of this run was published`,
            status,
          ),
        );
      });
    });
    exited.catch(() => {}); // awaited below, possibly after a copy failed first
    const digestPipe = (child.stdio as unknown as Readable[])[6];
    const copies = Promise.all([
      copy(child.stdout!, req.diffOut, `the diff of ${o.command}`),
      copy(digestPipe, req.digestOut, `the digest of ${o.command}`),
    ]);
    // progress: the blocks the digest has reached so far, in its own block size (CMD's for a new chain)
    let digestBytes = 0, head = Buffer.alloc(0);
    digestPipe.on("data", (b: Uint8Array) => {
      if (head.length < HEADER_SIZE) head = Buffer.concat([head, b]).subarray(0, HEADER_SIZE);
      digestBytes += b.length;
      const bs = head.length === HEADER_SIZE ? head.readUInt32LE(0) : req.blocksize;
      req.onProgress(Math.max(0, Math.floor((digestBytes - HEADER_SIZE) / DIGEST_SIZE)) * bs);
    });
    // a command that fails says so first, whatever its half-written outputs did meanwhile
    await Promise.race([exited, copies.then(() => exited)]).catch(async (err) => {
      if (!(err instanceof CommandFailed)) {
        child.kill("SIGTERM");
        await exited.catch(() => {});
      }
      throw err;
    });
    await copies;
    return child;
  } finally {
    unregister();
  }
}

/** Pipes a command's output into a file (ended, which syncs it); a write error is one line. */
function copy(from: Readable, to: Writable, what: string): Promise<void> {
  return new Promise((resolve, reject) =>
    pipeline(from, to, (err) => err ? reject(describeIoError(`writing ${what}`, err)) : resolve())
  );
}

/** A new read-only descriptor of a temporary file the request's writable wrote (its own is write-only). */
function reopen(w: Writable): number {
  const fd = (w as Writable & { fd?: number }).fd;
  if (typeof fd !== "number") throw new Error("commandDumper needs the backup's file writers");
  try {
    return fs.openSync(`/proc/self/fd/${fd}`, "r");
  } catch (err) {
    throw describeIoError("reading back the command's output", err);
  }
}

async function withHasher<T>(f: (hasher: BlockHasher) => Promise<T>): Promise<T> {
  const par = createParallelism(undefined, { readsAndWrites: true });
  try {
    return await f(par.hasher);
  } finally {
    await par.close();
  }
}

/** The arguments as messages and the manifest show them: a `--password` value is not repeated. */
function redacted(args: string[]): string[] {
  return args.map((a, i) =>
    /^--password=/.test(a) ? "--password=***" : args[i - 1] === "--password" && i > 0 ? "***" : a
  );
}

/**
 * Whether a command file is a script without a `#!` line, which sh runs itself (execvp does so too, but
 * the runtimes start commands with posix_spawn, which fails on it): neither `#!` nor an ELF header. A
 * file that cannot be read (execute-only) is left to the kernel.
 */
function shellScript(file: string): boolean {
  const head = Buffer.alloc(4);
  let n: number;
  try {
    const fd = fs.openSync(file, "r");
    try {
      n = fs.readSync(fd, head, 0, 4, 0);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
  return !(n >= 2 && head[0] === 0x23 && head[1] === 0x21) &&
    !(n === 4 && head.toString("latin1") === "\x7fELF");
}

/**
 * Where sh would find CMD: a name with a slash as it is, else the first executable regular file of that
 * name in PATH (an empty entry: the current directory). Null when there is none.
 */
export function findCommand(cmd: string, pathVar = process.env.PATH ?? "/usr/bin:/bin"): string | null {
  if (cmd.includes("/")) return cmd;
  for (const dir of pathVar.split(":")) {
    const file = dir === "" ? `./${cmd}` : path.join(dir, cmd); // spawned with a slash: not looked up again
    try {
      if (!fs.statSync(file).isFile()) continue;
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      continue;
    }
  }
  return null;
}
