/** Progress of long work on a terminal: bytes, MB/s, ETA, redrawn on one stderr line. Silent otherwise. */
import process from "node:process";
import { RateEstimate } from "./rate.ts";
import { formatBytes, formatDuration, formatRate } from "./units.ts";

/** Whether a progress line is on the terminal now (any Progress's). */
let lineShown = false;

/** What clears the progress line before another message, or "" when none is shown. */
export function clearProgressLine(): string {
  if (!lineShown) return "";
  lineShown = false;
  return "\r\x1b[K";
}

export class Progress {
  #start = Date.now();
  #lastDraw = 0;
  #drawn = false;
  #rate = new RateEstimate();

  constructor(
    private readonly label: string,
    private total: number | null,
    private readonly enabled = process.stderr.isTTY === true,
  ) {}

  update(done: number, total?: number | null): void {
    if (total) this.total = total;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.#lastDraw < 250) return;
    this.#rate.sample(done, now);
    this.#lastDraw = now;
    const elapsed = now - this.#start;
    let line = `${this.label}: ${formatBytes(done)}`;
    if (this.total) {
      const pct = Math.min(100, (done / this.total) * 100);
      const eta = this.#rate.etaSeconds(this.total);
      line += ` / ${formatBytes(this.total)} (${pct.toFixed(1)}%)  ETA ${
        eta === null ? "--" : formatDuration(eta * 1000)
      }`;
    }
    line += `  ${formatRate(done, elapsed)}`;
    process.stderr.write(`\r\x1b[K${line}`);
    this.#drawn = lineShown = true;
  }

  /** Clears the progress line. */
  end(): void {
    if (this.#drawn) process.stderr.write(clearProgressLine());
    this.#drawn = false;
  }
}
