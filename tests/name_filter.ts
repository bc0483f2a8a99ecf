/** `--filter PATTERN` of the test command: a regular expression, case-insensitive; other text matches literally. */
export function testNameFilter(f: string): RegExp {
  try {
    return new RegExp(f, "i");
  } catch {
    return new RegExp(f.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"), "i");
  }
}
