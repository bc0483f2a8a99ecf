/**
 * The ages `status` compares against (`--max-age 26h`, `--max-verify-age 8d`): whole numbers of weeks, days,
 * hours, minutes and seconds in that order, as in `1w`, `26h`, `90m`, `1d12h`. Unlike `prune --keep-within`
 * (restic's `1y2m3d4h`, where `m` is months and periods follow the calendar), these are fixed lengths of
 * time, and `m` is minutes as in systemd and cron tools.
 */
import { UsageError } from "../errors.ts";

const UNIT_SECONDS: Record<string, number> = { w: 7 * 86400, d: 86400, h: 3600, m: 60, s: 1 };
const AGE = /^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/;

export interface Age {
  seconds: number;
  /** As the user wrote it, for messages. */
  text: string;
}

/** `text` as an age; a bad or zero one is a usage error naming `option`. */
export function parseAge(text: string, option: string): Age {
  const m = AGE.exec(text);
  const seconds = m
    ? ["w", "d", "h", "m", "s"].reduce((sum, u, i) => sum + Number(m[i + 1] ?? 0) * UNIT_SECONDS[u], 0)
    : 0;
  if (!m || !(seconds > 0) || !Number.isSafeInteger(seconds)) {
    throw new UsageError(
      `${option} '${text}' is not a duration (whole weeks, days, hours, minutes, seconds: 26h, 90m, 8d, 1w, 1d12h)`,
    );
  }
  return { seconds, text };
}

/** A short human age: "45s", "12m", "5h 3m", "2d 4h", "3w 1d". */
export function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  const parts: [number, string][] = s >= 7 * 86400
    ? [[Math.floor(s / 604800), "w"], [Math.floor(s % 604800 / 86400), "d"]]
    : s >= 86400
    ? [[Math.floor(s / 86400), "d"], [Math.floor(s % 86400 / 3600), "h"]]
    : s >= 3600
    ? [[Math.floor(s / 3600), "h"], [Math.floor(s % 3600 / 60), "m"]]
    : s >= 60
    ? [[Math.floor(s / 60), "m"]]
    : [[s, "s"]];
  return parts.filter(([n], i) => i === 0 || n > 0).map(([n, u]) => `${n}${u}`).join(" ");
}
