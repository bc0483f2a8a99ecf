/**
 * Cleanup on every path: registered actions run when the command fails, and on SIGINT, SIGTERM or SIGHUP
 * (a dropped SSH session of an interactive run) before the process exits with 128 + the signal's number.
 * Actions must be synchronous so they finish before exit; they get the reason when a signal ended the run.
 */
import process from "node:process";
import { EXIT } from "./errors.ts";
import { clearProgressLine } from "./display/progress.ts";

type Action = (interruptedBy: string | null) => void;
const actions = new Set<Action>();
let installed = false;

export function onCleanup(action: Action): () => void {
  actions.add(action);
  return () => actions.delete(action);
}

export function runCleanups(interruptedBy: string | null = null): void {
  for (const a of [...actions].reverse()) {
    actions.delete(a);
    try {
      a(interruptedBy);
    } catch { /* keep cleaning */ }
  }
}

const SIGNAL_EXIT = { SIGINT: EXIT.sigint, SIGTERM: EXIT.sigterm, SIGHUP: EXIT.sighup } as const;

export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  for (const [sig, code] of Object.entries(SIGNAL_EXIT)) {
    process.on(sig as keyof typeof SIGNAL_EXIT, () => {
      try {
        // one line, also when a progress line was being redrawn; stderr may be gone (SIGHUP)
        process.stderr.write(`${clearProgressLine()}blockdiff: interrupted by ${sig}, cleaning up\n`);
      } catch { /* nobody to tell */ }
      runCleanups(sig);
      process.exit(code);
    });
  }
}
