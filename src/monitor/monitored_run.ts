/**
 * What `backup`, `prune` and `verify` do around their work for monitoring: the chain's last-run record
 * (last_run.ts) says "running" from the start and the outcome at the end, and `--metrics FILE` (metrics.ts)
 * is written at the end; the end is a success, a failure (thrown, or a non-zero exit such as verify's 3), or
 * a signal (cleanup.ts runs this before the process exits). The record is the chain lock holder's: a backup
 * or prune writes it once it holds the lock (`report.locked()`), so a run refused because another holds it
 * (exit 4) leaves the holder's record alone, as does one that fails before (its command line). A record that
 * cannot be written at the start does not stop the work (a prune on a full disk is what frees it): a run
 * that succeeds then says so in a warning, one that fails has its own line. After a success, writing the
 * record or the metrics is part of a backup's or prune's run, whose every I/O error is one line and exit 1:
 * the run fails saying that its work stands. After a failure or a signal the run's own line is what counts
 * and these go unsaid. A verify, which may run on read-only media, never fails for
 * them (a `--metrics` it cannot write excepted). Command lines that do not parse name no chain for sure and
 * record nothing (`status` then sees the chain grow stale).
 */
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { onCleanup } from "../cleanup.ts";
import { BlockdiffError, describeIoError, EXIT } from "../errors.ts";
import { Chain } from "../store/chain.ts";
import { chainExists, resolveChain } from "../store/monthly.ts";
import { type LastRun, type MonitoredCommand, readLastRun, runningRecord, writeLastRun } from "./last_run.ts";
import { type RunFacts, writeMetrics } from "./metrics.ts";

export interface MonitorOptions {
  command: MonitoredCommand;
  /** The chain as the command line names it (for `backup --monthly`, the base name); none: no record. */
  chainSpec: string | undefined;
  /** Whether the run is one to record (not `prune --dry-run`). */
  record: boolean;
  metricsFile: string | undefined;
  /** Where a warning line goes (default: stderr). */
  warn?: (line: string) => void;
}

/** What the command tells about its run, filled in as it goes. */
export interface RunReport extends RunFacts {
  /** The one line of a run that returns a non-zero exit code without throwing. */
  failure?: string;
  /** Called by a backup or prune once it holds the chain's lock: the record says "running" from then on. */
  locked(): void;
}

const SIGNAL_EXIT: Record<string, number> = {
  SIGINT: EXIT.sigint,
  SIGTERM: EXIT.sigterm,
  SIGHUP: EXIT.sighup,
};

export async function monitoredRun(
  o: MonitorOptions,
  run: (report: RunReport) => Promise<number>,
): Promise<number> {
  const startedAt = new Date();
  const chain = chainOf(o.chainSpec);
  // only a chain that exists gets a record: a failed first backup, or a verify of a name typed wrong,
  // leaves no file behind (status then says there is no such chain)
  const recorded = () => o.record && chain && existing(chain) ? chain : null;
  const quiet = o.command === "verify";
  /** This run's record, once it wrote "running" there (under the chain's lock). */
  let owned: Chain | null = null;
  /** Whether the run got the chain's lock: a new chain, made by this run, gets its record at the end. */
  let holder = false;
  let previous: LastRun | null = null;
  const report: RunReport = {
    locked() {
      holder = true;
      const at = owned ? null : recorded();
      if (!at) return;
      previous = readLastRun(at, o.command);
      owned = at;
      try {
        writeLastRun(at, runningRecord(o.command, startedAt, previous));
      } catch (err) {
        // the work comes first (a prune on a full disk is what frees it); the end writes the record again, and
        // a run that succeeds says what happened (one that fails has its own line)
        if (!quiet) startProblem = describeIoError("writing", err).message;
      }
    },
  };
  let startProblem: string | null = null;
  let finished = false;
  /** Writes the outcome; returns the first error when writing what the run must write failed. */
  const finish = (
    exitCode: number,
    state: LastRun["state"],
    message: string | null,
  ): BlockdiffError | null => {
    if (finished) return null;
    finished = true;
    let problem: BlockdiffError | null = null;
    const attempt = (write: () => void, required: boolean) => {
      try {
        write();
      } catch (err) {
        if (required) problem ??= describeIoError("writing", err);
      }
    };
    const finishedAt = new Date();
    const lastSuccessAt = state === "succeeded"
      ? finishedAt.toISOString()
      : previous?.lastSuccessAt ?? (o.command === "backup" && chain ? newestFinish(chain) : null);
    const atEnd = owned ?? (holder ? recorded() : null);
    if (atEnd) {
      attempt(() =>
        writeLastRun(atEnd, {
          ...runningRecord(o.command, startedAt, previous),
          state,
          finishedAt: finishedAt.toISOString(),
          exitCode,
          message,
          lastSuccessAt,
        }), !quiet);
    }
    if (o.metricsFile !== undefined && chain) {
      const metricsFile = o.metricsFile;
      const { failure: _line, locked: _locked, ...facts } = report;
      attempt(() =>
        writeMetrics(metricsFile, {
          chain,
          command: o.command,
          startedAt,
          finishedAt,
          exitCode: problem && exitCode === 0 ? EXIT.failure : exitCode,
          lastSuccessAt: lastSuccessAt === null ? null : new Date(lastSuccessAt),
          facts: { ...facts, generation: report.generation ?? newestGeneration(chain) },
        }), true);
    }
    return problem;
  };
  const unregister = onCleanup((signal) => {
    if (signal) finish(SIGNAL_EXIT[signal] ?? EXIT.failure, "interrupted", `interrupted by ${signal}`);
  });
  try {
    if (o.metricsFile !== undefined) checkMetricsDirectory(o.metricsFile);
    if (o.command === "verify") report.locked(); // it takes no lock: its record is its own
    const code = await run(report);
    const problem = finish(
      code,
      code === 0 ? "succeeded" : "failed",
      code === 0 ? null : report.failure ?? `exit ${code}`,
    );
    if (problem && code === 0) {
      const done = o.command === "backup" && report.generation !== undefined
        ? `generation ${report.generation} of ${o.chainSpec} was published`
        : `the ${o.command} of ${o.chainSpec} is done`;
      throw new BlockdiffError(`${done}, but ${problem.message}`);
    }
    if (startProblem && code === 0) {
      (o.warn ?? warnOnStderr)(
        `warning: the run's start could not be recorded (${startProblem}); its end was`,
      );
    }
    return code;
  } catch (err) {
    const known = err instanceof BlockdiffError;
    finish(
      known ? err.exitCode : EXIT.failure,
      "failed",
      known ? err.message : `internal error: ${(err as Error)?.message ?? String(err)}`,
    );
    throw err;
  } finally {
    unregister();
  }
}

function warnOnStderr(line: string): void {
  process.stderr.write(`blockdiff: ${line}\n`);
}

function chainOf(spec: string | undefined): Chain | null {
  if (spec === undefined) return null;
  try {
    return new Chain(spec);
  } catch {
    return null; // not a chain name: the command says so
  }
}

/** `--metrics FILE` goes into an existing directory: checked before the run does anything. */
function checkMetricsDirectory(file: string): void {
  const dir = path.dirname(file);
  let isDir = false;
  try {
    isDir = fs.statSync(dir).isDirectory();
  } catch { /* said below */ }
  if (!isDir) throw new BlockdiffError(`--metrics ${file}: directory ${dir} does not exist`);
}

function existing(chain: Chain): boolean {
  try {
    return chainExists(resolveChain(chain.path("")));
  } catch {
    return false;
  }
}

/** The newest generation of the chain (for `--monthly`, of its newest month); 0 when it has none. */
function newestGeneration(chain: Chain): number | undefined {
  try {
    return resolveChain(chain.path("")).readVersion();
  } catch {
    return undefined;
  }
}

/** When the chain's newest generation was finished: its manifest's time, else its digest file's. */
function newestFinish(chain: Chain): string | null {
  try {
    const c = resolveChain(chain.path(""));
    const gen = c.readVersion();
    if (gen === 0) return null;
    return c.readManifest(gen)?.finishedAt ?? fs.statSync(c.digestPath(gen)).mtime.toISOString();
  } catch {
    return null;
  }
}
