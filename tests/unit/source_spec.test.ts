/** SOURCE on the command line: local paths and the two remote forms. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { describeSource, parseSource } from "../../src/source/spec.ts";
import { it } from "../helpers.ts";

describe("SOURCE", () => {
  it("is local unless it has a host before a colon", () => {
    for (const s of ["/dev/vg0/db", "./img:1", "disk.img", "dir/a:b", "/x:y:/z"]) {
      assert.deepEqual(parseSource(s), { kind: "local", path: s }, s);
    }
  });

  it("reads [user@]host[:port]:/path and ssh://[user@]host[:port]/path", () => {
    assert.deepEqual(parseSource("root@db1:/dev/vg0/db"), {
      kind: "remote",
      user: "root",
      host: "db1",
      port: null, // not given: the ssh config's Port, else 22
      path: "/dev/vg0/db",
    });
    assert.deepEqual(parseSource("db1:2222:/srv/a b"), {
      kind: "remote",
      user: null,
      host: "db1",
      port: 2222,
      path: "/srv/a b",
    });
    assert.deepEqual(parseSource("ssh://bk@10.0.0.5:2200/dev/sdb"), {
      kind: "remote",
      user: "bk",
      host: "10.0.0.5",
      port: 2200,
      path: "/dev/sdb",
    });
    assert.equal(describeSource(parseSource("ssh://bk@h:2200/x")), "bk@h:2200:/x");
    assert.equal(describeSource(parseSource("root@h:/x")), "root@h:/x");
    assert.equal((parseSource("h:22:/x") as { port: number }).port, 22); // given: wins over the config
    assert.equal(describeSource(parseSource("h:22:/x")), "h:22:/x");
  });

  it("refuses bad ports, relative remote paths and unparsable URLs", () => {
    assert.throws(() => parseSource("h:99999:/x"), /invalid port/);
    assert.throws(() => parseSource("root@h:relative"), /must be absolute/);
    assert.throws(() => parseSource("ssh://h"), /cannot parse/);
  });
});
