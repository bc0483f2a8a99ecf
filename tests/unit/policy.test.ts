/** Retention rules with restic's semantics (src/pruner/policy.ts); dates in local time, as the rules use. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { applyPolicy, isoWeek, parseDuration, type RetentionPolicy } from "../../src/pruner/policy.ts";
import { describeMembers } from "../../src/store/generations.ts";
import { it } from "../helpers.ts";

const NONE: RetentionPolicy = {
  last: 0,
  hourly: 0,
  daily: 0,
  weekly: 0,
  monthly: 0,
  yearly: 0,
  within: null,
};

/** Generation g of `n` daily ones finished at 03:00 on day g of October 2026 onwards (Oct 1 is a Thursday). */
const daily = (n: number) =>
  Array.from({ length: n }, (_, i) => ({ generation: i + 1, time: new Date(2026, 9, i + 1, 3, 0, 0) }));
const kept = (p: Partial<RetentionPolicy>, list = daily(60), now = new Date(2027, 0, 1)) =>
  applyPolicy(list, { ...NONE, ...p }, now).filter((d) => d.keep).map((d) => d.generation).sort((a, b) =>
    a - b
  );

describe("the retention policy", () => {
  it("60 daily generations to --keep-daily 7 --keep-weekly 4 --keep-monthly 2", () => {
    // newest Nov 29 (a Sunday, ISO week 48): days Nov 23..29; weeks 48, 47 (Nov 22), 46 (Nov 15), 45 (Nov 8);
    // months November and October (Oct 31)
    assert.deepEqual(kept({ daily: 7, weekly: 4, monthly: 2 }), [31, 39, 46, 53, 54, 55, 56, 57, 58, 59, 60]);
  });

  it("the newest is always kept; --keep-last; a rule with counts left keeps the oldest too", () => {
    assert.deepEqual(kept({ last: 3 }), [58, 59, 60]);
    assert.deepEqual(kept({ monthly: 1 }), [60]);
    assert.deepEqual(kept({ monthly: 5 }), [1, 31, 60], "only two months: the oldest generation too");
    assert.deepEqual(kept({ yearly: -1 }), [1, 60]);
    assert.deepEqual(kept({ daily: -1 }, daily(5)), [1, 2, 3, 4, 5]);
  });

  it("--keep-within counts back from the newest generation, not from now", () => {
    assert.deepEqual(kept({ within: parseDuration("2d") }), [59, 60]); // Nov 27 03:00 is not after itself
    assert.deepEqual(kept({ within: parseDuration("2d1h") }), [58, 59, 60]);
    assert.deepEqual(kept({ within: parseDuration("1m") }, daily(60)).length, 31); // Oct 29 03:00 .. Nov 29
    // a generation dated in the future does not move the reference
    const list = [...daily(3), { generation: 4, time: new Date(2030, 0, 1) }];
    assert.deepEqual(kept({ within: parseDuration("1d") }, list, new Date(2026, 9, 4)), [3, 4]);
  });

  it("the order is the generations' numbers: the chain's newest is kept whatever its clock said", () => {
    const list = [...daily(3), { generation: 4, time: new Date(2026, 8, 1) }];
    assert.deepEqual(kept({ last: 1 }, list), [4]);
  });

  it("periods are calendar ones: two generations in one day keep the later; ISO weeks across a year end", () => {
    const list = [
      { generation: 1, time: new Date(2026, 11, 31, 1) }, // Thursday: ISO week 53 of 2026
      { generation: 2, time: new Date(2027, 0, 3, 1) }, // Sunday: still week 53 of 2026
      { generation: 3, time: new Date(2027, 0, 4, 1) }, // Monday: week 1 of 2027
      { generation: 4, time: new Date(2027, 0, 4, 9) },
    ];
    assert.deepEqual(isoWeek(new Date(2027, 0, 3)), { year: 2026, week: 53 });
    assert.deepEqual(kept({ daily: 2 }, list), [2, 4]);
    assert.deepEqual(kept({ weekly: 2 }, list), [2, 4]);
    assert.deepEqual(kept({ hourly: 3 }, list), [2, 3, 4]);
  });

  it("durations: 1y2m3d4h and any of its parts, nothing else", () => {
    assert.deepEqual(parseDuration("1y2m3d4h"), { years: 1, months: 2, days: 3, hours: 4, text: "1y2m3d4h" });
    assert.equal(parseDuration("36h").hours, 36);
    for (const bad of ["", "3w", "1d2y", "d", "-1d", "1.5d"]) assert.throws(() => parseDuration(bad), bad);
  });

  it("generation lists are shown as ranges", () => {
    assert.equal(describeMembers([1, 2, 3, 7, 9, 10]), "1..3, 7, 9..10");
    assert.equal(describeMembers([]), "none");
  });
});
