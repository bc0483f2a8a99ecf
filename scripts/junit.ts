/** Reading Deno's JUnit report: leaf test cases, and the table of fault and security scenarios. */

export interface Leaf {
  /** Full name: "describe > it". */
  name: string;
  outcome: "passed" | "failed" | "skipped";
}

const unescape = (s: string) =>
  s.replaceAll("&gt;", ">").replaceAll("&lt;", "<").replaceAll("&quot;", '"').replaceAll("&apos;", "'")
    .replaceAll("&amp;", "&");

/** Leaf test cases (an `it`, not the `describe` around it). */
export function leaves(xml: string): Leaf[] {
  const cases = [...xml.matchAll(/<testcase name="([^"]*)"[^>]*?(?:\/>|>([^]*?)<\/testcase>)/g)]
    .map((m) => ({
      name: unescape(m[1]),
      outcome: /<failure/.test(m[2] ?? "")
        ? "failed" as const
        : /<skipped/.test(m[2] ?? "")
        ? "skipped" as const
        : "passed" as const,
    }));
  const names = cases.map((c) => c.name);
  return cases.filter((c) => !names.some((n) => n.startsWith(c.name + " > ")));
}

/** Tests named "... fault: X" or "... security: X" are the reliability suite's scenarios (docs/testing.md). */
const SCENARIO = /^(?:\((\w+)\) )?(fault|security): (.*?)(?: \((\w+)\))?$/;

/** One row per scenario; a scenario run against both the source and the binary shows both. */
export function scenarioTable(all: Leaf[]): string {
  const rows = new Map<string, { kind: string; text: string; runs: string[]; outcome: string }>();
  for (const l of all) {
    const parts = l.name.split(" > ");
    const m = SCENARIO.exec(parts.at(-1)!);
    if (!m) continue;
    const target = m[1] ?? m[4] ?? /\((source|binary)\)$/.exec(parts[0])?.[1] ?? "";
    const row = rows.get(m[2] + m[3]) ?? { kind: m[2], text: m[3], runs: [], outcome: "ok" };
    if (target) row.runs.push(target);
    if (l.outcome !== "passed" && row.outcome !== "FAILED") row.outcome = l.outcome.toUpperCase();
    rows.set(m[2] + m[3], row);
  }
  if (!rows.size) return "";
  const cells = [["kind", "scenario", "run as", "outcome"]].concat(
    [...rows.values()].map((r) => [r.kind, r.text, r.runs.join("+") || "-", r.outcome]),
  );
  const w = [0, 1, 2].map((i) => Math.max(...cells.map((c) => c[i].length)));
  return cells.map((c) => `${c[0].padEnd(w[0])}  ${c[1].padEnd(w[1])}  ${c[2].padEnd(w[2])}  ${c[3]}`).join(
    "\n",
  );
}
