/**
 * OpenSSH's patterns (ssh_config(5) "PATTERNS", match.c): `*` matches any run of characters, `?` exactly
 * one, everything else (`[`, `]`, `.`) itself; a pattern list is comma-separated and `!pattern` excludes.
 * Host names are compared without regard to case, as ssh lowercases them.
 */

/** Whether `text` matches one pattern (no commas, no `!`). */
export function matchPattern(text: string, pattern: string): boolean {
  // iterative wildcard matching with backtracking to the last `*`
  let t = 0, p = 0, star = -1, mark = 0;
  while (t < text.length) {
    if (p < pattern.length && (pattern[p] === "?" || pattern[p] === text[t])) {
      t++;
      p++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/**
 * A comma-separated pattern list against `text`: "match" when a pattern matches and no negated one does,
 * "negated" when a `!pattern` matches (that excludes whatever else matched), "none" otherwise.
 */
export function matchPatternList(
  text: string,
  list: string | string[],
  o: { ignoreCase: boolean },
): "match" | "negated" | "none" {
  const norm = (s: string) => o.ignoreCase ? s.toLowerCase() : s;
  const patterns = (Array.isArray(list) ? list : [list]).flatMap((l) => l.split(","));
  let positive = false;
  for (const raw of patterns) {
    if (raw === "") continue;
    const negated = raw.startsWith("!");
    if (!matchPattern(norm(text), norm(negated ? raw.slice(1) : raw))) continue;
    if (negated) return "negated";
    positive = true;
  }
  return positive ? "match" : "none";
}

/** A host name against a host pattern list (known_hosts, `Match host`): true only for "match". */
export function matchHostPatterns(host: string, list: string | string[]): boolean {
  return matchPatternList(host, list, { ignoreCase: true }) === "match";
}
