/** Writing results: JSON on stdout for `--json`, human lines on stderr/stdout otherwise. */
import process from "node:process";

let stdoutUsed = false;

/**
 * Text on stdout. Nothing else touches process.stdout: under Bun that makes a pipe on stdout non-blocking,
 * for every process that shares it, which `dump` (writing its diff to fd 1 itself) must not do.
 */
export function printOut(text: string): void {
  stdoutUsed = true;
  process.stdout.write(text);
}

/** Resolves once what printOut wrote has been handed to the system. */
export function stdoutFlushed(): Promise<void> {
  if (!stdoutUsed) return Promise.resolve();
  return new Promise((resolve) => process.stdout.write("", () => resolve()));
}

export function printJson(value: unknown): void {
  printOut(JSON.stringify(value, null, 2) + "\n");
}

export function note(line: string): void {
  process.stderr.write(`blockdiff: ${line}\n`);
}

export function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) {
    printOut(
      r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c])).join("  ") + "\n",
    );
  }
}
