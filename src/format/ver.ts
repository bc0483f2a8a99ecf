/** Version file (`NAME.ver`): the number of the last complete generation, decimal, then "\n". */
import { IntegrityError } from "../errors.ts";

export function encodeVersion(generation: number): string {
  return `${generation}\n`;
}

export function decodeVersion(text: string, what: string): number {
  const m = /^\s*(\d{1,15})\s*$/.exec(text);
  if (!m) {
    throw new IntegrityError(
      `${what}: expected a generation number, found ${JSON.stringify(text.slice(0, 40))}`,
    );
  }
  return Number(m[1]);
}
