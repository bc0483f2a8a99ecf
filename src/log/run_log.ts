/** `--log FILE`: timestamped lines appended to a file (like cronlog), also on stderr with VERBOSE. */
import * as fs from "node:fs";
import process from "node:process";
import { describeIoError } from "../errors.ts";

export class RunLog {
  constructor(private readonly file: string | null, private readonly verbose = !!process.env.VERBOSE) {}

  info(message: string): void {
    const line = `[${timestamp(new Date())}] ${message}\n`;
    if (this.verbose) process.stderr.write(line);
    if (this.file === null) return;
    try {
      fs.appendFileSync(this.file, line, { mode: 0o600 });
    } catch (err) {
      throw describeIoError(`writing log ${this.file}`, err);
    }
  }

  /** As `info`, where a log that cannot be written must not hide the failure being logged. */
  tryInfo(message: string): void {
    try {
      this.info(message);
    } catch { /* the failure itself is on stderr */ }
  }
}

function timestamp(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${
    p(d.getMinutes())
  }:${p(d.getSeconds())}`;
}
