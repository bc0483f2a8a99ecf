/** ~/.my.cnf: only its [client] section, quotes removed, dashes as underscores. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, describe } from "node:test";
import { readMyCnf } from "../../src/mysql/credentials.ts";
import { it, tempDir } from "../helpers.ts";

describe("my.cnf", () => {
  const dir = tempDir();
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads the [client] section only", () => {
    const p = path.join(dir, "my.cnf");
    fs.writeFileSync(
      p,
      `# mine\n[mysqld]\nuser=mysql\n[client]\nuser = backup\npassword="p w'd"\n; note\n` +
        `socket='/run/mysqld/mysqld.sock'\nssl-mode=DISABLED\n[mysql]\nuser=other\n`,
    );
    assert.deepEqual(readMyCnf(p), {
      user: "backup",
      password: "p w'd",
      socket: "/run/mysqld/mysqld.sock",
      ssl_mode: "DISABLED",
    });
  });

  it("a missing file is empty", () => {
    assert.deepEqual(readMyCnf(path.join(dir, "none")), {});
  });
});
