/**
 * Cleanup on every path: registered actions run when the command fails, and on SIGINT/SIGTERM before the
 * process exits (130/143). Actions must be synchronous so they finish before exit.
 */
import process from "node:process";
import { EXIT } from "./errors.ts";

type Action = () => void;
const actions = new Set<Action>();
let installed = false;

export function onCleanup(action: Action): () => void {
  actions.add(action);
  return () => actions.delete(action);
}

export function runCleanups(): void {
  for (const a of [...actions].reverse()) {
    actions.delete(a);
    try {
      a();
    } catch { /* keep cleaning */ }
  }
}

export function installSignalHandlers(): void {
  if (installed) return;
  installed = true;
  const handler = (sig: "SIGINT" | "SIGTERM") => () => {
    process.stderr.write(`\nblockdiff: interrupted by ${sig}, cleaning up\n`);
    runCleanups();
    process.exit(sig === "SIGINT" ? EXIT.sigint : EXIT.sigterm);
  };
  process.on("SIGINT", handler("SIGINT"));
  process.on("SIGTERM", handler("SIGTERM"));
}
