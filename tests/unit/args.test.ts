/** Command lines: the option parser, the block-size rule, the agent's request (both of its ends). */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { parseArgs } from "../../src/cli/args.ts";
import { blockSizeRule } from "../../src/cli/block_size.ts";
import { EXIT } from "../../src/errors.ts";
import { decodeAgentArgs, encodeAgentArgs, encodeForgetArgs } from "../../src/remote/agent_args.ts";
import { it } from "../helpers.ts";

const SPECS = [
  { name: "json", kind: "flag" as const },
  { name: "generation", short: "g", kind: "value" as const },
  { name: "lvm-snapshot", kind: "optional" as const },
  { name: "mysql-lock-retries", aliases: ["lock-retries"], kind: "value" as const },
];
const usage = (e: unknown) => (e as { exitCode?: number }).exitCode === EXIT.usage;

describe("the option parser", () => {
  it("takes long, short, --opt=value, optional values, aliases and -- as the end of options", () => {
    const p = parseArgs(
      ["NAME", "--json", "-g", "3", "--lvm-snapshot", "--lock-retries=4", "SRC", "--", "--json", "x"],
      SPECS,
      "t",
    );
    assert.deepEqual(p.positionals, ["NAME", "SRC"]);
    assert.deepEqual([...p.opts], [["json", true], ["generation", "3"], ["lvm-snapshot", true], [
      "mysql-lock-retries",
      "4",
    ]]);
    assert.deepEqual(p.rest, ["--json", "x"]);
    assert.equal(parseArgs(["-g7", "--lvm-snapshot=5G"], SPECS, "t").opts.get("lvm-snapshot"), "5G");
  });

  it("refuses unknown options, a value for a flag and a missing value, as usage errors", () => {
    assert.throws(
      () => parseArgs(["--frob"], SPECS, "t"),
      (e) => usage(e) && /unknown option --frob/.test(`${e}`),
    );
    assert.throws(() => parseArgs(["-x"], SPECS, "t"), /unknown option -x/);
    assert.throws(() => parseArgs(["--json=1"], SPECS, "t"), /--json takes no value/);
    assert.throws(() => parseArgs(["--generation"], SPECS, "t"), /--generation needs a value/);
  });
});

describe("the block-size rule", () => {
  it("a new chain takes --block-size, else BLOCKSIZE, else 16384; suffixes k and m", () => {
    assert.equal(blockSizeRule({ option: undefined, env: undefined })(null), 16384);
    assert.equal(blockSizeRule({ option: undefined, env: "4096" })(null), 4096);
    assert.equal(blockSizeRule({ option: "8k", env: "4096" })(null), 8192);
    assert.equal(blockSizeRule({ option: "1M", env: "" })(null), 1 << 20);
  });

  it("an existing chain keeps its own: BLOCKSIZE is ignored, a different --block-size is an error", () => {
    assert.equal(blockSizeRule({ option: undefined, env: "4096" })(16384), 16384);
    assert.equal(blockSizeRule({ option: "16k", env: undefined })(16384), 16384);
    assert.throws(
      () => blockSizeRule({ option: "8192", env: undefined })(4096, "chain db"),
      (e) => usage(e) && /--block-size 8192 conflicts with chain db, whose block size is 4096/.test(`${e}`),
    );
  });

  it("bad values are usage errors at once, before any chain is looked at", () => {
    for (
      const [option, env] of [["128m", undefined], ["0", undefined], ["abc", undefined], [undefined, "abc"], [
        undefined,
        "0",
      ], [undefined, "16k"]]
    ) {
      assert.throws(() => blockSizeRule({ option, env }), (e) => usage(e), `${option} ${env}`);
    }
  });
});

describe("the agent's request", () => {
  const request = {
    path: "/dev/vg0/my lv",
    blocksize: 16384,
    compression: "zstd" as const,
    level: 3,
    oldDigestBytes: 4 + 16 * 10,
    snapshot: { size: "10G", lvcreatePrefix: "nice -n 19" },
    awaitLock: true,
    tracking: {
      chainId: "0a1b2c3d",
      generation: 5,
      previous: {
        chainId: "0a1b2c3d",
        vg: "vg0",
        lv: "my lv",
        originUuid: "u-u-i-d",
        pool: "pool",
        snapshot: "mylv-bdbase-0a1b2c3d-4",
        thinId: 7,
        size: 1 << 30,
      },
      forceFullScan: null,
      verify: true,
      maxPoolUsage: 90,
    },
  };

  it("decodes what the controller encodes", () => {
    const argv = encodeAgentArgs(request);
    assert.equal(argv[0], "agent");
    assert.deepEqual(decodeAgentArgs(argv.slice(1)), { op: "dump", ...request });
    const plain = {
      ...request,
      oldDigestBytes: null,
      snapshot: null,
      awaitLock: false,
      tracking: null,
      path: "--json",
    };
    assert.deepEqual(decodeAgentArgs(encodeAgentArgs(plain).slice(1)), { op: "dump", ...plain });
    const forget = { vg: "vg0", chainId: "0a1b2c3d" };
    assert.deepEqual(decodeAgentArgs(encodeForgetArgs(forget).slice(1)), {
      op: "forget-baseline",
      ...forget,
    });
  });

  it("refuses anything else with one line", () => {
    for (
      const argv of [
        ["restore"],
        ["dump", "--frob", "--", "/x"],
        ["dump", "--block-size", "x", "--", "/x"],
        ["dump", "--block-size", "4096", "/x"],
        ["dump", "--block-size", "4096", "--tracking", "{}", "--", "/x"],
        ["forget-baseline", "--", "vg0", "nothex!!"],
      ]
    ) {
      assert.throws(
        () => decodeAgentArgs(argv),
        (e) => usage(e) && /internal: started by/.test((e as Error).message),
        argv.join(" "),
      );
    }
  });
});
