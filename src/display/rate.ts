/**
 * The rate of long work and the time it still needs (the progress line's ETA): an exponentially weighted
 * average of the rate between samples. The ETA is shown once the average has settled (the latest rate
 * within a quarter of it, or after a few seconds), so a slow start (connecting, a snapshot, a cold page cache)
 * does not show a first ETA several times too long that then jumps down.
 */

/** How quickly the average follows a change of rate: about the last 3 s weigh most. */
const TIME_CONSTANT_MS = 3000;
/** No ETA before this much of the work was measured... */
const SETTLE_MS = 2000;
/** ...nor, until this much was, while the latest rate is more than this far from the average. */
const SETTLED_BY_MS = 5000;
const SETTLED_WITHIN = 0.25;

export class RateEstimate {
  #first: { at: number; done: number } | null = null;
  #last: { at: number; done: number } | null = null;
  /** Bytes per millisecond; null until two samples. */
  #rate: number | null = null;
  #settled = false;

  /** Notes that `done` bytes were done at `now` (ms). */
  sample(done: number, now: number): void {
    // the measure starts with the first progress (not while a snapshot or connection is being set up), and
    // again when the count goes back (a new pass)
    if (this.#first === null || done < this.#last!.done || done === this.#first.done) {
      this.#first = this.#last = { at: now, done };
      this.#rate = null;
      this.#settled = false;
      return;
    }
    const dt = now - this.#last!.at;
    if (dt <= 0) return;
    const rate = (done - this.#last!.done) / dt;
    // the first rate is the average since the first sample; later ones move the average by their weight
    this.#rate = this.#rate === null
      ? rate
      : this.#rate + (1 - Math.exp(-dt / TIME_CONSTANT_MS)) * (rate - this.#rate);
    this.#last = { at: now, done };
    const measured = now - this.#first.at;
    this.#settled ||= this.#rate > 0 && measured >= SETTLED_BY_MS ||
      (measured >= SETTLE_MS && Math.abs(rate - this.#rate) <= SETTLED_WITHIN * this.#rate);
  }

  /** Seconds until `total` at the current rate; null while too little was measured to say. */
  etaSeconds(total: number): number | null {
    if (!this.#settled || this.#rate === null || this.#rate <= 0) return null;
    return Math.max(0, total - this.#last!.done) / this.#rate / 1000;
  }
}
