/** `deno task install`: from a clone to an installed, working binary (scripts/install.ts). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import process from "node:process";
import { after, describe } from "node:test";
import { ORIGINAL_NAMES } from "../src/original/names.ts";
import { BINARY, it, ROOT, tempDir } from "./helpers.ts";

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

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

  it("--with-original-names links the six original names to it; a symlink or a hard link of it is replaced, another file refused", () => {
    const prefix = path.join(dir, "orig");
    const bin = path.join(prefix, "bin");
    fs.mkdirSync(bin, { recursive: true });
    fs.symlinkSync("/opt/blockdiff-perl/ssh_lvm_dump", path.join(bin, "ssh_lvm_dump")); // an old link
    const r = install(["--prefix", prefix, "--with-original-names"]);
    assert.equal(r.status, 0, r.stderr);
    for (const name of ORIGINAL_NAMES) assert.equal(fs.readlinkSync(path.join(bin, name)), "blockdiff", name);
    assert.deepEqual(
      fs.readdirSync(bin).sort(),
      ["blockdiff", ...ORIGINAL_NAMES].sort(),
      "left temporary files",
    );
    assert.match(r.stdout, /ssh_lvm_dump pointed to \/opt\/blockdiff-perl\/ssh_lvm_dump; now to blockdiff/);
    // the names lead to the tools: blockdiff_merge FILE < diff
    const data = Buffer.from("x".repeat(1000));
    const diff = Buffer.concat([
      u32(512),
      u32(0),
      u32(0),
      data.subarray(0, 512),
      u32(512),
      u32(0),
      data.subarray(512),
    ]);
    const img = path.join(dir, "merged.img");
    const m = spawnSync(path.join(bin, "blockdiff_merge"), [img], { input: diff, encoding: "utf8" });
    assert.equal(m.status, 0, m.stderr);
    assert.ok(fs.readFileSync(img).equals(data));
    // a hard link of the installed blockdiff is ours: replaced by the link
    fs.rmSync(path.join(bin, "mysqllock"));
    fs.linkSync(path.join(bin, "blockdiff"), path.join(bin, "mysqllock"));
    assert.equal(install(["--prefix", prefix, "--with-original-names"]).status, 0);
    assert.equal(fs.readlinkSync(path.join(bin, "mysqllock")), "blockdiff");
    // any other file may be the original tool: refused, and nothing installed
    const original = "#!/bin/sh\n# the original blockdiff_backup\n";
    fs.rmSync(path.join(bin, "blockdiff_backup"));
    fs.writeFileSync(path.join(bin, "blockdiff_backup"), original);
    const ino = fs.statSync(path.join(bin, "blockdiff")).ino;
    const refused = install(["--prefix", prefix, "--with-original-names"]);
    assert.equal(refused.status, 1);
    assert.match(
      refused.stderr,
      /^install: .*\/bin\/blockdiff_backup exists and is not a link to blockdiff \(the original blockdiff_backup\?\); move it away/m,
    );
    assert.equal(fs.readFileSync(path.join(bin, "blockdiff_backup"), "utf8"), original);
    assert.equal(fs.statSync(path.join(bin, "blockdiff")).ino, ino, "blockdiff was installed all the same");
    // without the option the names are not looked at
    assert.equal(install(["--prefix", prefix]).status, 0);
    assert.equal(fs.readFileSync(path.join(bin, "blockdiff_backup"), "utf8"), original);
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
