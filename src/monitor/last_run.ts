/**
 * The last run of each command that `status` watches, one small file per chain and command next to the
 * chain: `NAME.last-backup.json`, `NAME.last-prune.json`, `NAME.last-verify.json` (mode 0600, replaced
 * whole). A run writes "running" (with its PID, host and the process's start time) when it starts and its
 * outcome when it ends: succeeded, failed (exit code and the error line) or interrupted by a signal. A run
 * killed by SIGKILL or a power cut leaves "running" behind: that it died shows in its process being gone
 * (same PID and start time), which is exactly when its run lock (NAME.lock) was released. One file per
 * command, so that a verify, which takes no lock and may run beside a backup, never overwrites the backup's.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import process from "node:process";
import type { Chain } from "../store/chain.ts";
import { removeDeadTemps, writeFileAtomic } from "./atomic_file.ts";

export const MONITORED_COMMANDS = ["backup", "prune", "verify"] as const;
export type MonitoredCommand = typeof MONITORED_COMMANDS[number];

export const LAST_RUN_FORMAT = "blockdiff-last-run/1";

export interface LastRun {
  format: typeof LAST_RUN_FORMAT;
  command: MonitoredCommand;
  state: "running" | "succeeded" | "failed" | "interrupted";
  pid: number;
  host: string;
  /** The process's start time in clock ticks since boot (/proc/PID/stat), telling a reused PID apart. */
  processStart: string | null;
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
  /** The error line of a failed run, or the signal of an interrupted one. */
  message: string | null;
  /** When a run of this command on this chain last succeeded (carried over by the runs that do not). */
  lastSuccessAt: string | null;
}

export function lastRunPath(chain: Chain, command: MonitoredCommand): string {
  return chain.path(`.last-${command}.json`);
}

/** The record, or null when there is none; one that does not parse counts as none (a status shows that). */
export function readLastRun(chain: Chain, command: MonitoredCommand): LastRun | null {
  let text: string;
  try {
    text = fs.readFileSync(lastRunPath(chain, command), "utf8");
  } catch {
    return null;
  }
  try {
    const r = JSON.parse(text) as LastRun;
    return r?.format === LAST_RUN_FORMAT && r.command === command && typeof r.startedAt === "string"
      ? r
      : null;
  } catch {
    return null;
  }
}

/** Replaces the command's record; what killed writers left of any of the chain's records goes. */
export function writeLastRun(chain: Chain, record: LastRun): void {
  for (const c of MONITORED_COMMANDS) if (c !== record.command) removeDeadTemps(lastRunPath(chain, c));
  writeFileAtomic(lastRunPath(chain, record.command), JSON.stringify(record, null, 2) + "\n", 0o600);
}

/** The "running" record of this process. */
export function runningRecord(
  command: MonitoredCommand,
  startedAt: Date,
  previous: LastRun | null,
): LastRun {
  return {
    format: LAST_RUN_FORMAT,
    command,
    state: "running",
    pid: process.pid,
    host: os.hostname(),
    processStart: processStartTime(process.pid),
    startedAt: startedAt.toISOString(),
    finishedAt: null,
    exitCode: null,
    message: null,
    lastSuccessAt: previous?.lastSuccessAt ?? null,
  };
}

/**
 * Whether the process of a "running" record still runs: true or false on the host that wrote it; null on
 * another host (it cannot be told from here).
 */
export function runIsAlive(r: LastRun): boolean | null {
  if (r.host !== os.hostname()) return null;
  const start = processStartTime(r.pid);
  return start !== null && start === r.processStart;
}

/** Field 22 of /proc/PID/stat (after the command name, which may hold spaces and parentheses). */
function processStartTime(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}
