/**
 * Which generations a retention policy keeps, with restic's `forget` semantics: the rules are OR'd; each
 * `--keep-PERIOD N` walks the generations newest first (by number) and keeps the newest one of each of the
 * last N periods (calendar hours, days, ISO weeks, months, years in the local time zone) that have one, and
 * the oldest generation too while it has counts left; `--keep-last N` keeps the N newest; `--keep-within D`
 * keeps everything finished within D of the newest. N = -1 means every period. The newest generation is
 * always kept: a chain is never emptied, and its newest generation is the next backup's base.
 */
import { UsageError } from "../errors.ts";

export interface RetentionPolicy {
  last: number;
  hourly: number;
  daily: number;
  weekly: number;
  monthly: number;
  yearly: number;
  within: Duration | null;
}

/** restic's duration: years, months, days and hours, as in `1y2m3d4h`. */
export interface Duration {
  years: number;
  months: number;
  days: number;
  hours: number;
  text: string;
}

export interface DatedGeneration {
  generation: number;
  /** When the generation's backup finished. */
  time: Date;
}

export interface Decision extends DatedGeneration {
  keep: boolean;
  /** Why it is kept ("daily", "within 7d", ...); empty when removed. */
  reasons: string[];
}

export const RULES = ["last", "hourly", "daily", "weekly", "monthly", "yearly"] as const;

export function emptyPolicy(p: RetentionPolicy): boolean {
  return RULES.every((r) => p[r] === 0) && p.within === null;
}

/** `1y2m3d4h` (any of the parts, in that order); a bad one is a usage error. */
export function parseDuration(text: string): Duration {
  const m = /^(?:(\d+)y)?(?:(\d+)m)?(?:(\d+)d)?(?:(\d+)h)?$/.exec(text);
  if (!m || text === "") {
    throw new UsageError(`invalid duration '${text}' (expected years, months, days, hours as in 1y2m3d4h)`);
  }
  const n = (s: string | undefined) => s === undefined ? 0 : Number(s);
  return { years: n(m[1]), months: n(m[2]), days: n(m[3]), hours: n(m[4]), text };
}

/** The policy's decision for every generation, newest first. */
export function applyPolicy(
  generations: DatedGeneration[],
  p: RetentionPolicy,
  now = new Date(),
): Decision[] {
  // newest first by number, the order they were taken in: a clock set back cannot make the chain's
  // newest generation (the next backup's base) look old
  const list = [...generations].sort((a, b) => b.generation - a.generation);
  if (list.length === 0) return [];
  const buckets = RULES.map((rule) => ({ rule, count: p[rule], last: NaN as number }));
  const past = list.filter((g) => g.time <= now);
  const latest = (past[0] ?? list[0]).time;
  const withinStart = p.within ? subtract(latest, p.within) : null;
  return list.map((g, nr) => {
    const reasons: string[] = [];
    if (nr === 0) reasons.push("newest");
    if (withinStart && g.time > withinStart) reasons.push(`within ${p.within!.text}`);
    for (const b of buckets) {
      if (b.count === 0) continue;
      const val = period(b.rule, g.time, nr);
      // restic keeps the oldest generation too while a rule has counts left: the longest history
      if (val !== b.last || nr === list.length - 1) {
        b.last = val;
        if (b.count > 0) b.count--;
        reasons.push(b.rule);
      }
    }
    return { ...g, keep: reasons.length > 0, reasons };
  });
}

/** The period `t` falls in for a rule, as one number (`last`: every generation its own). */
function period(rule: typeof RULES[number], t: Date, nr: number): number {
  const y = t.getFullYear(), mo = t.getMonth() + 1, d = t.getDate();
  switch (rule) {
    case "last":
      return nr;
    case "hourly":
      return ((y * 100 + mo) * 100 + d) * 100 + t.getHours();
    case "daily":
      return (y * 100 + mo) * 100 + d;
    case "weekly": {
      const w = isoWeek(t);
      return w.year * 100 + w.week;
    }
    case "monthly":
      return y * 100 + mo;
    case "yearly":
      return y;
  }
}

/** ISO 8601 week-numbering year and week of the local date of `t`. */
export function isoWeek(t: Date): { year: number; week: number } {
  const day = new Date(Date.UTC(t.getFullYear(), t.getMonth(), t.getDate()));
  const weekday = day.getUTCDay() || 7; // Monday 1 .. Sunday 7
  day.setUTCDate(day.getUTCDate() + 4 - weekday); // the Thursday of its week decides the year
  const year = day.getUTCFullYear();
  const week = Math.ceil(((day.getTime() - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7);
  return { year, week };
}

function subtract(t: Date, d: Duration): Date {
  const r = new Date(t);
  r.setFullYear(r.getFullYear() - d.years, r.getMonth() - d.months, r.getDate() - d.days);
  r.setHours(r.getHours() - d.hours);
  return r;
}
