/** `deno task install`: from a clone to an installed, working binary (scripts/install.ts). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, describe } from "node:test";
import { BINARY, it, ROOT, tempDir } from "./helpers.ts";

function install(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, ["task", "install", ...args], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, ...env },
  });
}

describe("install", () => {
  const dir = tempDir("blockdiff-install-");
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("installs PREFIX/bin/blockdiff that runs, replacing an older one, with nothing left beside it", () => {
    const prefix = path.join(dir, "usr");
    const r = install(["--prefix", prefix]);
    assert.equal(r.status, 0, r.stderr);
    const bin = path.join(prefix, "bin", "blockdiff");
    assert.match(r.stdout, new RegExp(`installed ${bin} \\(blockdiff \\d`));
    assert.equal(fs.statSync(bin).mode & 0o777, 0o755);
    assert.equal(fs.statSync(bin).size, fs.statSync(BINARY).size);
    const v = spawnSync(bin, ["--version"], { encoding: "utf8" });
    assert.equal(v.status, 0);
    // an older file in place is replaced (a running copy keeps its inode), nothing else is left
    fs.writeFileSync(bin, "#!/bin/sh\necho old\n");
    const ino = fs.statSync(bin).ino;
    const again = install([], { PREFIX: prefix });
    assert.equal(again.status, 0, again.stderr);
    assert.notEqual(fs.statSync(bin).ino, ino);
    assert.deepEqual(fs.readdirSync(path.join(prefix, "bin")), ["blockdiff"]);
    assert.equal(spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout, v.stdout);
  });

  it("bad input: one line and exit 2 (arguments) or 1 (cannot install)", () => {
    const file = path.join(dir, "a-file");
    fs.writeFileSync(file, "");
    const notDir = install(["--prefix", file]);
    assert.equal(notDir.status, 1);
    assert.match(
      notDir.stderr,
      new RegExp(`^install: cannot install ${file}/bin/blockdiff: .*not a directory`, "m"),
    );
    const bogus = install(["--bogus"]);
    assert.equal(bogus.status, 2);
    assert.match(bogus.stderr, /install: unknown argument '--bogus' \(usage: deno task install/);
    assert.equal(install(["--prefix"]).status, 2);
  });
});
