/** Writing results: JSON on stdout for `--json`, human lines on stderr/stdout otherwise. */
import process from "node:process";

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

export function note(line: string): void {
  process.stderr.write(`blockdiff: ${line}\n`);
}

export function printTable(rows: string[][]): void {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  for (const r of rows) {
    process.stdout.write(
      r.map((cell, c) => c === r.length - 1 ? cell : cell.padEnd(widths[c])).join("  ") + "\n",
    );
  }
}
