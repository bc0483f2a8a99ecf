/** `blockdiff_backup NAME CMD ARGS`: the diff's extension guessed from ARGS, and CMD found as sh finds it. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { after, describe } from "node:test";
import { findCommand } from "../../src/archiver/command_dumper.ts";
import { compressionOfArgs } from "../../src/original/blockdiff_backup.ts";
import { it } from "../helpers.ts";

describe("blockdiff_backup's arguments", () => {
  it("takes the compression from the last -z/--gzip/--lzop/--zstd among the arguments, as the original", () => {
    assert.equal(compressionOfArgs(["root@db1", "/dev/vg0/mysql"]), "none");
    assert.equal(compressionOfArgs(["-z", "root@db1", "/dev/vg0/mysql"]), "gzip");
    assert.equal(compressionOfArgs(["--gzip", "file"]), "gzip");
    assert.equal(compressionOfArgs(["--lzop", "file"]), "lzop");
    assert.equal(compressionOfArgs(["dump", "--zstd", "file"]), "zstd");
    assert.equal(compressionOfArgs(["-z", "--lzop", "file"]), "lzop");
    assert.equal(compressionOfArgs(["--lzop", "-z", "file"]), "gzip");
    assert.equal(compressionOfArgs(["-zv", "--gzip=1", "x-z"]), "none", "only whole arguments count");
  });

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "blockdiff-findcmd-"));
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("finds CMD in PATH like sh: the first executable file, an empty entry is the current directory", () => {
    const [a, b] = ["a", "b"].map((d) => path.join(dir, d));
    for (const d of [a, b]) fs.mkdirSync(d);
    fs.writeFileSync(path.join(a, "dump"), "", { mode: 0o644 }); // not executable: skipped
    fs.mkdirSync(path.join(a, "tool")); // a directory: skipped
    fs.writeFileSync(path.join(b, "dump"), "", { mode: 0o755 });
    fs.writeFileSync(path.join(b, "tool"), "", { mode: 0o755 });
    fs.symlinkSync(path.join(b, "tool"), path.join(a, "linked"));
    assert.equal(findCommand("dump", `${a}:${b}`), path.join(b, "dump"));
    assert.equal(findCommand("tool", `${a}:${b}`), path.join(b, "tool"));
    assert.equal(findCommand("linked", `${a}:${b}`), path.join(a, "linked"), "a link keeps its own name");
    assert.equal(findCommand("missing", `${a}:${b}`), null);
    assert.equal(findCommand("./x/y", ""), "./x/y", "a name with a slash is taken as it is");
    const cwd = process.cwd();
    try {
      process.chdir(b);
      assert.equal(findCommand("dump", `${a}:`), "./dump");
    } finally {
      process.chdir(cwd);
    }
  });
});
