/**
 * `--snapshot-wrapper "WORDS"`: a command run on this (the backup) host around the snapshot's creation, as
 * the original's LVCREATE_PREFIX wrapped its local `ssh host lvcreate ...` (`mysqllock --host=db1 --` held
 * the read lock while its command ran). The wrapper runs as `WORDS... <this program> snapshot-gate SOCKET`;
 * the gate connects to the socket this run listens on and says "held" (the wrapper has done what it does
 * before its command); the snapshot is then created, the gate hears whether it was and exits 0 (created) or
 * 1, and the wrapper must exit 0 for the run to go on. An interrupted run kills the wrapper's process group;
 * a run that dies without cleaning up closes the socket, which the gate takes as "not created".
 */
import { type ChildProcess, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { onCleanup } from "../cleanup.ts";
import { BlockdiffError, UsageError } from "../errors.ts";
import { selfCommand } from "../runtime.ts";
import type { SnapshotQuiesce } from "./session.ts";

/** The gate's protocol, a line each way: the gate says HELD, the run answers CREATED or FAILED. */
export const GATE = { held: "held", created: "created", failed: "failed" } as const;

/** How long a wrapper may take to end after its gate heard "failed" (the run fails anyway) before a kill. */
const FAILED_EXIT_WAIT_MS = 10_000;

/** Characters a shell would treat specially: the words are run without one, so they are refused. */
const SHELL_SPECIAL = /["'`$\\|&;<>(){}[\]*?~#!]/;

/**
 * The wrapper's words: split at white space like a shell splits plain words. Anything a shell would
 * interpret (quotes, `$`, redirections, globs...) is refused with one line rather than passed on literally.
 */
export function parseWrapperWords(text: string): string[] {
  const words = text.split(/\s+/).filter(Boolean);
  if (words.length === 0) throw new UsageError("--snapshot-wrapper needs a command");
  const special = SHELL_SPECIAL.exec(text);
  if (special) {
    throw new UsageError(
      `--snapshot-wrapper '${text}': '${special[0]}' would need a shell; give plain words separated by ` +
        `spaces (put anything more in a script)`,
    );
  }
  return words;
}

export interface WrapperQuiesceOptions {
  /** The wrapper's command and arguments (parseWrapperWords). */
  words: string[];
  /** Lines the wrapper wrote (stdout and stderr) when it succeeded. */
  log: (line: string) => void;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export function wrapperQuiesce(o: WrapperQuiesceOptions): SnapshotQuiesce {
  const shown = `--snapshot-wrapper '${o.words.join(" ")}'`;
  return async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-gate-")); // mode 0700: ours alone
    const socketPath = path.join(dir, "gate");
    const server = net.createServer();
    let child: ChildProcess | null = null;
    let stderr = "";
    const output: string[] = [];
    const killGroup = () => {
      if (!child?.pid || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, "SIGTERM"); // the wrapper and its gate
      } catch { /* gone already */ }
    };
    const dispose = () => {
      killGroup();
      server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    };
    const unregister = onCleanup(dispose);
    const lastStderrLine = () => stderr.trim().split("\n").pop()?.trim() || "no message";
    let gate: net.Socket;
    let closed: Promise<Exit>;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once(
          "error",
          (err) =>
            reject(new BlockdiffError(`${shown}: cannot listen on ${socketPath} (TMPDIR): ${err.message}`)),
        );
        server.listen(socketPath, () => resolve());
      });
      const held = new Promise<net.Socket>((resolve, reject) => {
        server.on("connection", (sock) => {
          server.close(); // one gate: any further connection finds nothing
          let heard = "";
          sock.on("data", (d) => {
            heard += d;
            if (heard === `${GATE.held}\n`) resolve(sock);
            else if (heard.includes("\n") || heard.length > 64) sock.destroy();
          });
          sock.on("error", () => {});
          sock.on("close", () => reject(new BlockdiffError(`${shown}: its snapshot-gate went away unheard`)));
        });
      });
      const cannotRun = (err: Error) =>
        new BlockdiffError(`${shown}: cannot run ${o.words[0]}: ${err.message}`);
      let c: ChildProcess;
      try {
        c = child = spawn(o.words[0], [...o.words.slice(1), ...selfCommand(), "snapshot-gate", socketPath], {
          stdio: ["ignore", "pipe", "pipe"],
          detached: true, // a process group of its own, killed as one
        });
      } catch (err) {
        throw cannotRun(err as Error); // some runtimes throw where Node emits 'error'
      }
      for (const [stream, isErr] of [[c.stdout!, false], [c.stderr!, true]] as const) {
        let partial = "";
        stream.setEncoding("utf8");
        stream.on("data", (d: string) => {
          if (isErr) stderr = (stderr + d).slice(-4096);
          const lines = (partial + d).split("\n");
          partial = lines.pop()!;
          output.push(...lines);
        });
        stream.on("end", () => partial && output.push(partial));
      }
      closed = new Promise<Exit>((resolve, reject) => {
        c.on("error", (err) => reject(cannotRun(err)));
        c.on("close", (code, signal) => resolve({ code, signal }));
      });
      const early = closed.then((e) => {
        throw new BlockdiffError(
          `${shown} ${describeExit(e)} before its snapshot-gate was reached: ${lastStderrLine()}`,
        );
      });
      gate = await Promise.race([held, early]);
    } catch (err) {
      unregister();
      dispose();
      throw err;
    }
    return async (created) => {
      try {
        gate.end(`${created ? GATE.created : GATE.failed}\n`);
        let timer: ReturnType<typeof setTimeout> | undefined;
        if (!created) timer = setTimeout(killGroup, FAILED_EXIT_WAIT_MS);
        const exit = await closed.finally(() => clearTimeout(timer));
        if (created && exit.code !== 0) {
          throw new BlockdiffError(
            `${shown} ${describeExit(exit)} after the snapshot was created: ${lastStderrLine()} ` +
              `(the snapshot is not used)`,
          );
        }
        if (created) output.forEach((line) => line.trim() && o.log(`${shown}: ${line}`));
      } finally {
        unregister();
        dispose();
      }
    };
  };
}

function describeExit(e: Exit): string {
  return e.signal ? `was killed by ${e.signal}` : `exited with status ${e.code}`;
}
