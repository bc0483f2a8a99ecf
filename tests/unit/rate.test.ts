/** The progress line's ETA (src/display/rate.ts): no jump after a slow start, follows a change of rate. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { RateEstimate } from "../../src/display/rate.ts";
import { it } from "../helpers.ts";

/** ETAs of work of `total` bytes sampled every 250 ms; `rate(t)` is the bytes per ms at time t. */
function etas(total: number, rate: (t: number) => number): (number | null)[] {
  const r = new RateEstimate();
  const out: (number | null)[] = [];
  let done = 0;
  for (let t = 250; done < total; t += 250) {
    done = Math.min(total, done + rate(t) * 250);
    r.sample(done, t);
    out.push(r.etaSeconds(total));
  }
  return out;
}

describe("ETA of the progress line", () => {
  it("after a slow start, says nothing until the rate settled, then never more than 1/3 off", () => {
    // 1 GB at 100 MB/s after 2 s of setting up (a snapshot, a connection) and 1 s at 20 MB/s (cold cache)
    const e = etas(1e9, (t) => t <= 2000 ? 0 : t <= 3000 ? 20_000 : 100_000);
    assert.deepEqual(e.slice(0, 4), [null, null, null, null]);
    const shown = e.map((v, i) => ({ v, t: (i + 1) * 0.25 })).filter((x) => x.v !== null);
    const truth = (t: number) => (1e9 - 2e7 - (t - 3) * 1e8) / 1e8;
    assert.ok(shown.length && shown[0].t <= 8, `first ETA at ${shown[0]?.t}s`);
    for (const { v, t } of shown) {
      assert.ok(Math.abs(v! - truth(t)) <= Math.max(0.5, truth(t) / 3), `${v} at ${t}s, truth ${truth(t)}`);
    }
  });

  it("moves smoothly: no ETA more than 10% below the one before while the rate wavers by 30%", () => {
    const e = etas(2e9, (t) => t % 500 ? 130_000 : 70_000).filter((v) => v !== null) as number[];
    for (let i = 1; i < e.length; i++) assert.ok(e[i] >= e[i - 1] * 0.9 - 0.3, `${e[i - 1]} -> ${e[i]}`);
  });

  it("follows a lasting change of rate within ~10 s", () => {
    // 100 MB/s for 10 s, then 25 MB/s: 10 s later the ETA is within 20% of the new truth
    const total = 2e9;
    const e = etas(total, (t) => t <= 10_000 ? 100_000 : 25_000);
    const at20 = e[20_000 / 250 - 1]!;
    const truth = (total - 1e9 - 10 * 2.5e7) / 2.5e7;
    assert.ok(Math.abs(at20 - truth) <= truth * 0.2, `${at20} vs ${truth}`);
  });

  it("starts over when the count goes back (a new pass)", () => {
    const r = new RateEstimate();
    for (let t = 250; t <= 3000; t += 250) r.sample(t * 100, t);
    assert.notEqual(r.etaSeconds(1e9), null);
    r.sample(0, 3250);
    assert.equal(r.etaSeconds(1e9), null);
  });
});
