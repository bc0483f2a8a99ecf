/** `blockdiff dump` / `merge`: the original's interface, byte for byte. */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as net from "node:net";
import * as zlib from "node:zlib";
import { execFileSync, spawnSync } from "node:child_process";
import { shellQuote } from "../src/ssh/quote.ts";
import { after, describe } from "node:test";
import {
  changeBlocks,
  expectFailure,
  it,
  pseudoRandom,
  referenceDump,
  run,
  targets,
  tempDir,
} from "./helpers.ts";

for (const t of targets()) {
  describe(`dump and merge (${t.name})`, () => {
    const dir = tempDir();
    after(() => fs.rmSync(dir, { recursive: true, force: true }));
    const file = path.join(dir, "src.img");
    const BS = 4096;

    /** Runs dump with fds 5/6 like the original scripts. */
    async function dump(args: string[], oldDigest: string | null, newDigest: string, env = {}) {
      const fds: Record<number, number> = { 6: fs.openSync(newDigest, "w") };
      if (oldDigest) fds[5] = fs.openSync(oldDigest, "r");
      try {
        return await run(t, ["dump", ...args], { cwd: dir, fds, env });
      } finally {
        for (const fd of Object.values(fds)) fs.closeSync(fd);
      }
    }

    it("full and incremental dumps equal the original format byte for byte (FILE argument and stdin)", async () => {
      fs.writeFileSync(file, pseudoRandom(BS * 10 + 123, 1));
      const v1 = fs.readFileSync(file);
      const r1 = await dump(["--block-size", String(BS), "src.img"], null, path.join(dir, "d.1.md5"));
      assert.equal(r1.code, 0, r1.stderr);
      const ref1 = referenceDump(v1, BS, null);
      assert.ok(r1.stdout.equals(ref1.diff), "full diff differs from the reference");
      assert.ok(fs.readFileSync(path.join(dir, "d.1.md5")).equals(ref1.digest));

      changeBlocks(file, BS, 3, 2, 2);
      fs.appendFileSync(file, pseudoRandom(5000, 3)); // grows: new blocks and a longer last block
      const v2 = fs.readFileSync(file);
      const r2 = await run(t, ["dump"], {
        cwd: dir,
        input: v2,
        fds: {
          5: fs.openSync(path.join(dir, "d.1.md5"), "r"),
          6: fs.openSync(path.join(dir, "d.2.md5"), "w"),
        },
      });
      assert.equal(r2.code, 0, r2.stderr);
      const ref2 = referenceDump(v2, BS, ref1.digest);
      assert.ok(r2.stdout.equals(ref2.diff), "incremental diff differs from the reference");
      assert.ok(fs.readFileSync(path.join(dir, "d.2.md5")).equals(ref2.digest));
    });

    it("takes BLOCKSIZE from the environment and --old-digest/--new-digest as flags", async () => {
      fs.writeFileSync(file, pseudoRandom(10000, 4));
      const r = await run(t, ["dump", "--new-digest", "e.md5", "src.img"], {
        cwd: dir,
        env: { BLOCKSIZE: "1024" },
      });
      assert.equal(r.code, 0, r.stderr);
      const ref = referenceDump(fs.readFileSync(file), 1024, null);
      assert.ok(r.stdout.equals(ref.diff));
      const r2 = await run(t, ["dump", "--old-digest", "e.md5", "--new-digest", "f.md5", "src.img"], {
        cwd: dir,
      });
      assert.equal(r2.code, 0, r2.stderr);
      assert.equal(r2.stdout.length, 4, "nothing changed: only the header");
      assert.ok(fs.readFileSync(path.join(dir, "f.md5")).equals(ref.digest));
    });

    it("compresses with -z (gzip), --zstd and --lzop; merge applies them", async () => {
      fs.writeFileSync(file, pseudoRandom(BS * 7 + 1, 5));
      const ref = referenceDump(fs.readFileSync(file), BS, null);
      const decoders: Record<string, (b: Buffer) => Buffer> = {
        "-z": zlib.gunzipSync,
        "--zstd": (b) => (zlib as unknown as { zstdDecompressSync(b: Buffer): Buffer }).zstdDecompressSync(b),
        "--lzop": (b) => execFileSync("lzop", ["-dc"], { input: b }),
      };
      for (const [flag, decode] of Object.entries(decoders)) {
        const r = await dump([flag, "--block-size", String(BS), "src.img"], null, path.join(dir, "z.md5"));
        assert.equal(r.code, 0, r.stderr);
        assert.ok(decode(r.stdout).equals(ref.diff), `${flag} output does not decompress to the diff`);
        const out = path.join(dir, `merged${flag}.img`);
        const m = await run(t, ["merge", flag, out], { cwd: dir, input: r.stdout });
        assert.equal(m.code, 0, m.stderr);
        assert.ok(fs.readFileSync(out).equals(fs.readFileSync(file)), `merge ${flag} differs`);
      }
    });

    it("merge applies generations in order onto an existing file", async () => {
      fs.writeFileSync(file, pseudoRandom(BS * 6, 6));
      const g1 = await dump(["--block-size", String(BS), "src.img"], null, path.join(dir, "m.1.md5"));
      changeBlocks(file, BS, 1, 1, 7);
      changeBlocks(file, BS, 5, 1, 8);
      const g2 = await dump(["src.img"], path.join(dir, "m.1.md5"), path.join(dir, "m.2.md5"));
      const out = path.join(dir, "m.img");
      for (const g of [g1, g2]) {
        assert.equal((await run(t, ["merge", out], { cwd: dir, input: g.stdout })).code, 0);
      }
      assert.ok(fs.readFileSync(out).equals(fs.readFileSync(file)));
    });

    it("fails clearly: conflicting --block-size, no fd 6, truncated or unreadable input", async () => {
      fs.writeFileSync(file, pseudoRandom(BS * 2, 9));
      await dump(["--block-size", String(BS), "src.img"], null, path.join(dir, "c.md5"));
      expectFailure(
        await dump(["--block-size", "8192", "src.img"], path.join(dir, "c.md5"), path.join(dir, "c2.md5")),
        2,
        /conflicts with the old digest, whose block size is 4096/,
      );
      expectFailure(await run(t, ["dump", "src.img"], { cwd: dir }), 2, /fd 6/);
      expectFailure(
        await run(t, ["dump", "--new-digest", "x.md5", "missing.img"], { cwd: dir }),
        1,
        /missing\.img: no such file/,
      );
      fs.writeFileSync(path.join(dir, "bad.md5"), Buffer.from([0, 0]));
      expectFailure(
        await dump(["src.img"], path.join(dir, "bad.md5"), path.join(dir, "c3.md5")),
        3,
        /too short/,
      );
      const full = await dump(["src.img"], null, path.join(dir, "c4.md5"));
      expectFailure(
        await run(t, ["merge", "m2.img"], { cwd: dir, input: full.stdout.subarray(0, 4 + 5) }),
        3,
        /truncated record header/,
      );
      expectFailure(
        await run(t, ["merge", "-z", "m3.img"], { cwd: dir, input: full.stdout }),
        3,
        /corrupt compressed/,
      );
    });

    it("fault: fd 6 is whatever the caller passed (/dev/null like stdout, a socket); fds 3 and 4 alone are not it", async () => {
      fs.writeFileSync(file, pseudoRandom(BS * 6 + 7, 21));
      const want = referenceDump(fs.readFileSync(file), BS, null);
      const cmd = t.cmd.map(shellQuote).join(" ");
      // cron, `ssh -n`: stdin, stdout and fd 6 all /dev/null
      const quiet = spawnSync("sh", [
        "-c",
        `${cmd} dump --block-size ${BS} src.img 6>/dev/null >/dev/null </dev/null`,
      ], {
        cwd: dir,
      });
      assert.equal(quiet.status, 0, quiet.stderr.toString());
      // other descriptors passed, 5 and 6 not: the runtime's own that land there are not taken for them
      const fds34 = spawnSync("sh", ["-c", `${cmd} dump src.img 3</dev/null 4</dev/null >/dev/null`], {
        cwd: dir,
      });
      assert.equal(fds34.status, 2);
      assert.match(fds34.stderr.toString(), /^blockdiff: dump: no place for the new digest/);
      // fd 6 a socket, as the original allows (bash's /dev/tcp)
      const server = net.createServer();
      const got: Buffer[] = [];
      const received = new Promise<void>((resolve) =>
        server.on("connection", (s) => {
          s.on("data", (d: Buffer) => got.push(d));
          s.on("end", resolve);
        })
      );
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
      const port = (server.address() as net.AddressInfo).port;
      const viaSocket = spawnSync(
        "bash",
        ["-c", `exec 6<>/dev/tcp/127.0.0.1/${port}; ${cmd} dump --block-size ${BS} src.img > sock.diff`],
        { cwd: dir },
      );
      if (t.name === "source") {
        // Deno's node:fs cannot write to a descriptor it did not open, nor reopen a socket through /dev/fd
        assert.equal(viaSocket.status, 1);
        assert.match(
          viaSocket.stderr.toString(),
          /^blockdiff: descriptor 6 cannot be used when blockdiff runs from source under Deno .*--new-digest FILE\n$/,
        );
      } else {
        assert.equal(viaSocket.status, 0, viaSocket.stderr.toString());
        await received;
        assert.ok(Buffer.concat(got).equals(want.digest), "the digest sent to the socket differs");
        assert.ok(fs.readFileSync(path.join(dir, "sock.diff")).equals(want.diff));
      }
      server.close();
    });

    it("merge applies records in stream order like the original: out of order and repeated offsets too", async () => {
      const blocks = [0, 1, 2, 3].map((i) => pseudoRandom(BS, 40 + i));
      const u32 = (n: number) => {
        const b = Buffer.alloc(4);
        b.writeUInt32LE(n);
        return b;
      };
      const rec = (index: number, data: Buffer) => [u32(index * BS), u32(0), data];
      const diff = Buffer.concat([
        u32(BS),
        ...rec(2, blocks[0]),
        ...rec(0, blocks[1]),
        ...rec(2, blocks[2]), // the same offset again: the later record wins
        ...rec(1, blocks[3]),
      ]);
      const target = path.join(dir, "unordered.img");
      const r = await run(t, ["merge", "unordered.img"], { cwd: dir, input: diff });
      assert.equal(r.code, 0, r.stderr);
      assert.ok(fs.readFileSync(target).equals(Buffer.concat([blocks[1], blocks[3], blocks[2]])));
      // a truncated record stops it after the records before it (exit 3)
      const cut = await run(t, ["merge", "cut.img"], {
        cwd: dir,
        input: diff.subarray(0, 4 + 3 * (8 + BS) + 5),
      });
      expectFailure(cut, 3, /diff on stdin: truncated record header/);
      assert.ok(
        fs.readFileSync(path.join(dir, "cut.img")).equals(
          Buffer.concat([blocks[1], Buffer.alloc(BS), blocks[2]]),
        ),
      );
    });

    /** Shell text running blockdiff as this target. */
    const shellCmd = (args: string) => `${t.cmd.map(shellQuote).join(" ")} ${args}`;
    /** Shell text that makes `handle`'s pipe non-blocking (as another program sharing it may), then runs the rest. */
    const nonBlocking = (handle: "STDIN" | "STDOUT") =>
      `perl -MFcntl -e 'fcntl(${handle}, F_SETFL, fcntl(${handle}, F_GETFL, 0) | O_NONBLOCK) ` +
      `or die; exec @ARGV or die'`;
    /** Runs a shell pipeline in bash, failing if any part of it fails. */
    const pipeline = (script: string) =>
      spawnSync("bash", ["-o", "pipefail", "-c", script], { cwd: dir, encoding: "utf8" });

    it("writes into a slow pipe, also a non-blocking one, and leaves the pipe blocking", () => {
      fs.writeFileSync(file, pseudoRandom(BS * 1024, 12)); // 4 MiB: far more than a pipe holds
      const ref = referenceDump(fs.readFileSync(file), BS, null).diff;
      const bd = shellCmd(`dump --block-size ${BS} --new-digest slow.md5 src.img`);
      const sh = (script: string) => {
        fs.rmSync(path.join(dir, "out"), { force: true });
        return pipeline(`${script} | (sleep 1; cat > out)`);
      };
      const r = sh(`{ ${bd}; grep ^flags /proc/self/fdinfo/4 4>&1 >flags.txt; }`);
      assert.equal(r.status, 0, r.stderr);
      assert.ok(fs.readFileSync(path.join(dir, "out")).equals(ref), "diff differs");
      const flags = parseInt(fs.readFileSync(path.join(dir, "flags.txt"), "utf8").split(/\s+/)[1], 8);
      assert.equal(flags & 0o4000, 0, "dump left its stdout pipe non-blocking (O_NONBLOCK)");

      const nb = sh(`${nonBlocking("STDOUT")} ${bd}`);
      if (t.name === "binary") {
        assert.equal(nb.status, 0, nb.stderr);
        assert.ok(fs.readFileSync(path.join(dir, "out")).equals(ref), "diff differs (non-blocking pipe)");
      } else {
        // Deno cannot tell how much of a write went in before EAGAIN: a clear failure, never repeated bytes
        assert.equal(nb.status, 1, nb.stderr);
        assert.match(nb.stderr, /EAGAIN|temporarily unavailable/);
      }
    });

    it("merge reads a diff from a slow pipe, also a non-blocking one", () => {
      fs.writeFileSync(file, pseudoRandom(BS * 1024, 13));
      fs.writeFileSync(path.join(dir, "slow.diff"), referenceDump(fs.readFileSync(file), BS, null).diff);
      for (const prefix of ["", nonBlocking("STDIN")]) {
        fs.rmSync(path.join(dir, "merged.img"), { force: true });
        const r = pipeline(`(sleep 1; cat slow.diff) | ${prefix} ${shellCmd("merge merged.img")}`);
        assert.equal(r.status, 0, `${prefix ? "non-blocking" : "blocking"}: ${r.stderr}`);
        assert.ok(fs.readFileSync(path.join(dir, "merged.img")).equals(fs.readFileSync(file)));
      }
    });

    it("writing to a full device fails with exit 1", async () => {
      fs.writeFileSync(file, pseudoRandom(BS * 64, 10));
      const out = fs.openSync("/dev/full", "w");
      try {
        const r = await run(t, ["dump", "--new-digest", "full.md5", "src.img"], { cwd: dir, stdoutFd: out });
        expectFailure(r, 1, /no space left on device/);
      } finally {
        fs.closeSync(out);
      }
    });
  });
}
