/** What a writing command may remove before it starts, and what makes it refuse (store/chain_state.ts). */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { EXIT } from "../../src/errors.ts";
import { Chain } from "../../src/store/chain.ts";
import { isChainFile, leftoversBeforeWrite, scanChain } from "../../src/store/chain_state.ts";
import { viewOf } from "../../src/store/generations.ts";
import { it, tempDir } from "../helpers.ts";

describe("the chain's state against .ver", () => {
  const root = tempDir();
  after(() => fs.rmSync(root, { recursive: true, force: true }));
  let n = 0;
  /** A directory holding `files` (empty; NAME.ver holds `ver`) and the chain `c` in it. */
  const chainWith = (files: string[], ver?: string) => {
    const dir = path.join(root, String(n++));
    fs.mkdirSync(dir);
    for (const f of files) fs.writeFileSync(path.join(dir, f), "");
    if (ver !== undefined) fs.writeFileSync(path.join(dir, "c.ver"), ver);
    const chain = new Chain(path.join(dir, "c"));
    return {
      chain,
      leftovers: () => {
        const state = scanChain(chain);
        return leftoversBeforeWrite(chain, state, viewOf(chain, state.version ?? 0)).map((p) =>
          path.basename(p)
        );
      },
    };
  };
  const refused = (f: () => unknown, why: RegExp) =>
    assert.throws(f, (e) => (e as { exitCode?: number }).exitCode === EXIT.integrity && why.test(`${e}`));
  const gen = (g: number) => [`c.${g}`, `c.${g}.md5`, `c.${g}.json`];

  it("a consistent chain has nothing to remove; other chains' and unrelated files are not looked at", () => {
    const c = chainWith([...gen(1), ...gen(2), "c.lock", "cc.1", "c.1.tmp", "other.9", "c.repair-x"], "2\n");
    assert.deepEqual(c.leftovers(), []);
    assert.deepEqual(chainWith([]).leftovers(), []);
  });

  it("temporary files, and generation .ver+1 without a manifest, are a killed run's leftovers", () => {
    const c = chainWith(
      [...gen(1), "c.2", "c.2.md5", "c.2.md5.tmp-123", "c.ver.tmp-9", "c.journal.tmp-4"],
      "1\n",
    );
    assert.deepEqual(c.leftovers().sort(), [
      "c.2",
      "c.2.md5",
      "c.2.md5.tmp-123",
      "c.journal.tmp-4",
      "c.ver.tmp-9",
    ]);
  });

  it("refuses a missing .ver beside generation files, a gap, two diffs, anything past .ver+1, a manifest past .ver", () => {
    refused(chainWith(gen(1)).leftovers, /c\.ver is missing but generation files exist \(c\.1, c\.1\.md5/);
    refused(chainWith([...gen(1), ...gen(3)], "3\n").leftovers, /says 3 but generation 2 has no diff file/);
    refused(chainWith(["c.1", "c.1.json"], "1\n").leftovers, /generation 1 has no digest file/);
    refused(chainWith([...gen(1), "c.1.gz"], "1\n").leftovers, /more than one diff file \(c\.1, c\.1\.gz\)/);
    refused(
      chainWith([...gen(1), "c.3"], "1\n").leftovers,
      /says 1 but files of generation 3 exist \(c\.3\)/,
    );
    refused(chainWith([...gen(1), ...gen(2)], "1\n").leftovers, /says 1 but generation 2 has a manifest/);
    refused(chainWith(gen(1), "garbage").leftovers, /expected a generation number/);
  });

  it("knows the chain's own files, also ones that do not exist yet and other names of them", () => {
    const c = chainWith([...gen(1), "c.lock"], "1\n");
    const dir = c.chain.dir;
    for (const f of ["c.1", "c.1.md5", "c.ver", "c.lock", "c.journal", "c.5.zst", "c.2.json.tmp-7"]) {
      assert.ok(isChainFile(c.chain, path.join(dir, f)), f);
    }
    fs.writeFileSync(path.join(dir, "c.restored.img"), ""); // an existing file named like the chain
    for (const f of ["c.img", "c", "cc.1", "c.1.bak", "c.restored.img"]) {
      assert.ok(!isChainFile(c.chain, path.join(dir, f)), f);
    }
    fs.linkSync(path.join(dir, "c.1"), path.join(dir, "hard.img"));
    fs.symlinkSync(path.join(dir, "c.1.md5"), path.join(root, "soft.img"));
    assert.ok(isChainFile(c.chain, path.join(dir, "hard.img")));
    assert.ok(isChainFile(c.chain, path.join(root, "soft.img")));
  });
});
