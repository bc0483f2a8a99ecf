/**
 * What `blockdiff status` finds for a chain: its newest generation and that generation's age, the last run
 * of backup, prune and verify (last_run.ts; a "running" one whose process is gone died), and the problems
 * that make the check fail: a generation older than `--max-age` (or none), a last run that failed, was
 * interrupted or died, a last successful verify older than `--max-verify-age` (when given), a chain that
 * cannot be read.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { BlockdiffError } from "../errors.ts";
import { Chain } from "../store/chain.ts";
import { resolveChain } from "../store/monthly.ts";
import { type Age, formatAge } from "./duration.ts";
import {
  type LastRun,
  MONITORED_COMMANDS,
  type MonitoredCommand,
  readLastRun,
  runIsAlive,
} from "./last_run.ts";

export interface StatusLimits {
  maxAge: Age;
  maxVerifyAge: Age | null;
  now: Date;
}

export type RunState = LastRun["state"] | "died";

export interface RunStatus {
  state: RunState;
  pid: number;
  host: string;
  startedAt: string;
  finishedAt: string | null;
  exitCode: number | null;
  message: string | null;
  lastSuccessAt: string | null;
}

export interface ChainStatus {
  /** The chain as named (DIR/NAME). */
  chain: string;
  name: string;
  dir: string;
  /** The worst problem's kind, else "running" or "ok". */
  status: "ok" | "running" | Problem["kind"];
  problems: Problem[];
  newestGeneration: { chain: string; generation: number; finishedAt: string; ageSeconds: number } | null;
  lastRuns: Record<MonitoredCommand, RunStatus | null>;
  lastVerify: { at: string; ageSeconds: number } | null;
}

/** In the order of their weight: a chain's status is its first problem's kind. */
const KINDS = ["broken", "died", "failed", "stale", "verify-stale"] as const;

export interface Problem {
  kind: typeof KINDS[number];
  text: string;
}

/** The chain `spec` names, or null when there is no trace of it (no generation, no record of a run). */
export function chainStatus(spec: string, limits: StatusLimits): ChainStatus | null {
  const chain = new Chain(spec);
  const problems: Problem[] = [];
  const ago = (iso: string) => formatAge(ageSeconds(iso, limits.now));
  const lastRuns = Object.fromEntries(
    MONITORED_COMMANDS.map((c) => [c, runStatus(readLastRun(chain, c))]),
  ) as Record<MonitoredCommand, RunStatus | null>;

  let newest: ChainStatus["newestGeneration"] = null;
  let exists = false;
  try {
    const c = resolveChain(spec);
    const gen = c.readVersion();
    exists = gen > 0 || fs.existsSync(c.digestPath(1));
    if (gen > 0) {
      const finishedAt = c.readManifest(gen)?.finishedAt ??
        fs.statSync(c.digestPath(gen)).mtime.toISOString();
      newest = { chain: c.name, generation: gen, finishedAt, ageSeconds: ageSeconds(finishedAt, limits.now) };
    }
  } catch (err) {
    exists = true;
    problems.push({ kind: "broken", text: err instanceof BlockdiffError ? err.message : String(err) });
  }
  if (!exists && MONITORED_COMMANDS.every((c) => lastRuns[c] === null)) return null;

  for (const c of MONITORED_COMMANDS) {
    const r = lastRuns[c];
    if (r?.state === "died") {
      problems.push({
        kind: "died",
        text: `${c} (pid ${r.pid}) started ${ago(r.startedAt)} ago died without an outcome ` +
          `(killed, crashed or the host went down)`,
      });
    } else if (r?.state === "failed" || r?.state === "interrupted") {
      problems.push({
        kind: "failed",
        text: `last ${c} ${r.state === "failed" ? "FAILED" : "was INTERRUPTED"} ${ago(r.finishedAt!)} ago ` +
          `(exit ${r.exitCode}): ${r.message}`,
      });
    }
  }
  if (!newest && !problems.some((p) => p.kind === "broken")) {
    problems.push({ kind: "stale", text: "no complete generation" });
  } else if (newest && olderThan(newest.finishedAt, limits.maxAge, limits.now)) {
    problems.push({
      kind: "stale",
      text: `generation ${newest.generation} is ${formatAge(newest.ageSeconds)} old, ` +
        `older than --max-age ${limits.maxAge.text}`,
    });
  }
  const verifiedAt = lastRuns.verify?.lastSuccessAt ?? null;
  const lastVerify = verifiedAt === null
    ? null
    : { at: verifiedAt, ageSeconds: ageSeconds(verifiedAt, limits.now) };
  if (limits.maxVerifyAge && (!lastVerify || olderThan(lastVerify.at, limits.maxVerifyAge, limits.now))) {
    problems.push({
      kind: "verify-stale",
      text: lastVerify
        ? `last successful verify ${formatAge(lastVerify.ageSeconds)} ago, older than --max-verify-age ` +
          limits.maxVerifyAge.text
        : `never verified successfully (--max-verify-age ${limits.maxVerifyAge.text})`,
    });
  }
  problems.sort((a, b) => KINDS.indexOf(a.kind) - KINDS.indexOf(b.kind));
  const running = MONITORED_COMMANDS.some((c) => lastRuns[c]?.state === "running");
  return {
    chain: spec,
    name: chain.name,
    dir: chain.dir,
    status: problems[0]?.kind ?? (running ? "running" : "ok"),
    problems,
    newestGeneration: newest,
    lastRuns,
    lastVerify,
  };
}

/** The one line `status` prints for a chain: its status, its problems, then the rest of what it knows. */
export function statusLine(s: ChainStatus, now: Date): string {
  const ago = (iso: string) => formatAge(ageSeconds(iso, now));
  const parts = s.problems.map((p) => p.text);
  const said = new Set(s.problems.map((p) => p.kind));
  if (s.newestGeneration && !said.has("stale")) {
    const g = s.newestGeneration;
    parts.push(`generation ${g.generation} finished ${shortTime(g.finishedAt)} (${ago(g.finishedAt)} ago)`);
  }
  for (const c of MONITORED_COMMANDS) {
    const r = s.lastRuns[c];
    if (r?.state === "running") {
      parts.push(`${c} running since ${ago(r.startedAt)} ago (pid ${r.pid}${r.host ? ` on ${r.host}` : ""})`);
    } else if (r?.state === "succeeded" && c !== "verify") {
      parts.push(`last ${c} succeeded ${ago(r.finishedAt!)} ago`);
    }
  }
  if (!said.has("verify-stale")) {
    parts.push(s.lastVerify ? `last verify OK ${ago(s.lastVerify.at)} ago` : "never verified");
  }
  return `${s.chain}: ${s.status.toUpperCase()}: ${parts.join("; ")}`;
}

/** The chains of a directory: every NAME with a NAME.ver or a record of a run, a month's chain of `backup
 * --monthly` (NAME-YYYYMM) only when it is the newest and no run is recorded under NAME. */
export function chainsIn(dir: string): string[] {
  const names = new Set<string>();
  for (const e of fs.readdirSync(dir)) {
    const m = /^(.+)\.(?:ver|last-(?:backup|prune|verify)\.json)$/.exec(e);
    if (m) names.add(m[1]);
  }
  const month = /^(.+)-(\d{4}(?:0[1-9]|1[0-2]))$/;
  return [...names].filter((n) => {
    const m = month.exec(n);
    if (!m) return true;
    if (names.has(m[1])) return false;
    return ![...names].some((o) => {
      const other = month.exec(o);
      return other !== null && other[1] === m[1] && other[2] > m[2];
    });
  }).sort().map((n) => path.join(dir, n));
}

function runStatus(r: LastRun | null): RunStatus | null {
  if (!r) return null;
  return {
    state: r.state === "running" && runIsAlive(r) === false ? "died" : r.state,
    pid: r.pid,
    host: r.host,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    exitCode: r.exitCode,
    message: r.message,
    lastSuccessAt: r.lastSuccessAt,
  };
}

function olderThan(iso: string, age: Age, now: Date): boolean {
  return now.getTime() - Date.parse(iso) > age.seconds * 1000;
}

/** Whole seconds, for messages and JSON. */
function ageSeconds(iso: string, now: Date): number {
  return Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
}

function shortTime(iso: string): string {
  return iso.replace("T", " ").replace(/\.\d+Z$/, "Z");
}
