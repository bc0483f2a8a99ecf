/** `--snapshot-wrapper "WORDS"`: plain words, split as a shell would; what a shell interprets is refused. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { UsageError } from "../../src/errors.ts";
import { parseWrapperWords } from "../../src/snapshot/wrapper_quiesce.ts";
import { it } from "../helpers.ts";

describe("--snapshot-wrapper words", () => {
  it("splits at any white space, as a shell splits plain words", () => {
    assert.deepEqual(parseWrapperWords("mysqllock --host=db1 --user=backup --"), [
      "mysqllock",
      "--host=db1",
      "--user=backup",
      "--",
    ]);
    assert.deepEqual(parseWrapperWords("  /usr/local/bin/hold\t-n 5\n"), ["/usr/local/bin/hold", "-n", "5"]);
    assert.deepEqual(parseWrapperWords("a,b:c@d%e+f/g.h_i-j"), ["a,b:c@d%e+f/g.h_i-j"]);
  });

  it("refuses an empty command and every character a shell would interpret, naming it", () => {
    assert.throws(
      () => parseWrapperWords("   "),
      (e) => e instanceof UsageError && /needs a command/.test(e.message),
    );
    for (
      const ch of [
        `"`,
        "'",
        "`",
        "$",
        "\\",
        "|",
        "&",
        ";",
        "<",
        ">",
        "(",
        ")",
        "{",
        "}",
        "[",
        "]",
        "*",
        "?",
        "~",
        "#",
        "!",
      ]
    ) {
      assert.throws(
        () => parseWrapperWords(`hold --x=a${ch}b`),
        (e) => e instanceof UsageError && e.message.includes(`'${ch}' would need a shell`),
        ch,
      );
    }
  });
});
