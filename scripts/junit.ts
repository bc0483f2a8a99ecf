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

/** Tests named "... fault: X" or "... security: X" are the reliability suite's scenarios (issue 5). */
const SCENARIO = /^(?:\((\w+)\) )?(fault|security): (.*)$/;

export function scenarioTable(all: Leaf[]): string {
  const rows: string[][] = [];
  for (const l of all) {
    const m = SCENARIO.exec(l.name.split(" > ").at(-1)!);
    if (!m) continue;
    rows.push([
      m[2],
      m[3] + (m[1] ? ` (${m[1]})` : ""),
      l.outcome === "passed" ? "ok" : l.outcome.toUpperCase(),
    ]);
  }
  if (!rows.length) return "";
  const w = [0, 1].map((i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `${r[0].padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2]}`;
  return [line(["kind", "scenario", "outcome"]), ...rows.map(line)].join("\n");
}
