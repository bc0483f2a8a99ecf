/**
 * Replaces the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->` in a docs file (tables the scripts
 * make), and formats the file as `deno task check` wants it (the scripts run under Deno).
 */
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import process from "node:process";

export function replaceSection(file: string, name: string, text: string): void {
  const doc = fs.readFileSync(file, "utf8");
  const begin = `<!-- ${name}:begin -->\n`, end = `<!-- ${name}:end -->`;
  const a = doc.indexOf(begin), b = doc.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file} has no ${name} section`);
  fs.writeFileSync(
    file,
    doc.slice(0, a + begin.length) + "\n" + text.replace(/^\n+/, "").trimEnd() + "\n\n" + doc.slice(b),
  );
  spawnSync(process.execPath, ["fmt", "--quiet", file], { stdio: "ignore" });
}
