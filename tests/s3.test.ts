/**
 * Chains in S3 (README "Chains in S3", SPEC §12) against a real Ceph radosgw (tests/rgw.ts): `copy` and
 * `backup --copy-to` publish a local chain's generations (manifest created only if absent, `.ver` after),
 * `restore`, `verify`, `list` and `status` read them back byte-exact for every compression; a gateway killed
 * or a run SIGKILLed mid-upload publishes nothing and the next run cleans up; of concurrent copies exactly
 * one publishes a generation; corrupted objects are caught; bad input and wrong credentials get one line.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe } from "node:test";
import { ListMultipartUploadsCommand, PutBucketVersioningCommand, S3Client } from "@aws-sdk/client-s3";
import {
  changeBlocks,
  expectFailure,
  it,
  pseudoRandom,
  referenceDump,
  run,
  sha256File,
  start,
  type Target,
  targets,
  tempDir,
  waitUntil,
} from "./helpers.ts";
import { type Rgw, rgwAvailable, startRgw } from "./rgw.ts";
import { startS3Proxy } from "./s3_proxy.ts";
import { sshdAvailable, startSshd } from "./sshd.ts";

const BS = 4096;
const BUCKET = "blockdiff-test";
const skip = rgwAvailable() ? false : "needs root and radosgw (ceph-mon, ceph-osd, radosgw)";

let rgw: Rgw;
let cache: string;

/** The environment of every run: the server, its keys, and a cache directory of the test's own. */
function s3env(extra: Record<string, string> = {}): Record<string, string> {
  return { ...rgw.env, XDG_CACHE_HOME: cache, ...extra };
}

function s3run(t: Target, args: string[], o: { cwd?: string; env?: Record<string, string> } = {}) {
  return run(t, args, { cwd: o.cwd, env: s3env(o.env) });
}

/** An S3 client of the test's own (to look at the server apart from blockdiff's code). */
function client(): S3Client {
  return new S3Client({
    endpoint: rgw.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: rgw.accessKey, secretAccessKey: rgw.secretKey },
  });
}

function uploadsUnder(prefix: string): Promise<number> {
  const c = client();
  return c.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, Prefix: prefix }))
    .then((r) => r.Uploads?.length ?? 0).finally(() => c.destroy());
}

async function setVersioning(bucket: string, status: "Enabled" | "Suspended"): Promise<void> {
  const c = client();
  await c.send(
    new PutBucketVersioningCommand({ Bucket: bucket, VersioningConfiguration: { Status: status } }),
  )
    .finally(() => c.destroy());
}

/** A local chain of `gens` generations of a `size`-byte image; returns each generation's image SHA-256. */
async function localChain(
  t: Target,
  dir: string,
  o: { gens: number; size: number; compress: string; seed?: number },
): Promise<string[]> {
  const img = path.join(dir, "src.img");
  fs.writeFileSync(img, pseudoRandom(o.size, o.seed ?? 7));
  const sums: string[] = [];
  for (let g = 1; g <= o.gens; g++) {
    if (g > 1) {
      changeBlocks(img, BS, g, 1, 100 + g);
      changeBlocks(img, BS, 10 * g, 3, 200 + g);
      changeBlocks(img, BS, Math.floor(o.size / BS) - 1, 1, 300 + g);
    }
    const r = await run(
      t,
      ["backup", "db", "src.img", "--block-size", String(BS), "--compress", o.compress],
      {
        cwd: dir,
      },
    );
    assert.equal(r.code, 0, r.stderr);
    sums.push(sha256File(img));
  }
  return sums;
}

/** A chain of `gens` generations backed up straight into S3 at `url`; returns each image's SHA-256. */
async function s3Chain(
  t: Target,
  dir: string,
  url: string,
  gens: number,
  size = 2 << 20,
  env: Record<string, string> = {},
): Promise<string[]> {
  const img = path.join(dir, "src.img");
  fs.writeFileSync(img, pseudoRandom(size, 21));
  const sums: string[] = [];
  for (let g = 1; g <= gens; g++) {
    if (g > 1) changeBlocks(img, BS, 3 * g, 1 + (g % 3), 50 + g);
    const r = await s3run(t, ["backup", url, "src.img", "--block-size", String(BS), "--compress", "zstd"], {
      cwd: dir,
      env,
    });
    assert.equal(r.code, 0, r.stderr);
    sums.push(sha256File(img));
  }
  return sums;
}

/** Restores each generation given from `url` and compares it with its SHA-256. */
async function restoresAll(t: Target, dir: string, url: string, sums: Record<number, string>): Promise<void> {
  for (const [g, sum] of Object.entries(sums)) {
    const out = path.join(dir, `restored-${g}.img`);
    const r = await s3run(t, ["restore", url, out, "-g", g, "--force"]);
    assert.equal(r.code, 0, `generation ${g}: ${r.stderr}`);
    assert.equal(sha256File(out), sum, `generation ${g}`);
  }
}

function oneLine(stderr: string): void {
  assert.equal(stderr.trim().split("\n").length, 1, `one line expected:\n${stderr}`);
}

describe("s3", { skip }, () => {
  before(async () => {
    rgw = await startRgw();
    await rgw.createBucket(BUCKET);
    cache = tempDir("blockdiff-s3-cache-");
  });
  after(async () => {
    await rgw?.stop();
  });

  for (const t of targets()) {
    describe(`s3 (${t.name})`, () => {
      for (const compress of ["none", "gzip", "zstd"]) {
        it(`copy, then list, verify and restore every generation from S3 byte-exact (${compress})`, async () => {
          const dir = tempDir();
          const sums = await localChain(t, dir, { gens: 3, size: 3 << 20, compress });
          const url = `s3://${BUCKET}/${t.name}/${compress}/db`;
          const c = await s3run(t, ["copy", "db", url, "--json"], { cwd: dir });
          assert.equal(c.code, 0, c.stderr);
          assert.deepEqual(JSON.parse(c.stdout.toString()).copied, [1, 2, 3]);
          const l = await s3run(t, ["list", url, "--json"]);
          assert.equal(l.code, 0, l.stderr);
          assert.deepEqual(
            JSON.parse(l.stdout.toString()).generations.map((g: { generation: number }) => g.generation),
            [1, 2, 3],
          );
          const v = await s3run(t, ["verify", url]);
          assert.equal(v.code, 0, v.stderr + v.stdout);
          assert.match(v.stdout.toString(), /generation 3: OK/);
          for (let g = 1; g <= 3; g++) {
            const out = path.join(dir, `r${g}.img`);
            const r = await s3run(t, ["restore", url, out, "--generation", String(g)]);
            assert.equal(r.code, 0, r.stderr);
            assert.equal(sha256File(out), sums[g - 1], `generation ${g}`);
          }
          const again = await s3run(t, ["copy", "db", url], { cwd: dir });
          assert.equal(again.code, 0, again.stderr);
          assert.match(again.stderr, /is up to date \(generation 3\)/);
          const keys = rgw.listKeys(BUCKET, `${t.name}/${compress}/`);
          assert.equal(keys.length, 1 + 3 * 3, keys.join(" ")); // .ver + per generation manifest, digest, diff
        });
      }

      it("copy of a chain the original tools wrote (no manifests): each generation gets one, restores byte-exact", async () => {
        const dir = tempDir();
        const v1 = pseudoRandom(BS * 6 + 300, 61); // a short last block
        const g1 = referenceDump(v1, BS, null);
        const v2 = Buffer.concat([v1.subarray(0, BS * 2), pseudoRandom(BS, 62), v1.subarray(BS * 3)]);
        const g2 = referenceDump(v2, BS, g1.digest);
        for (
          const [f, b] of [["orig.1", g1.diff], ["orig.1.md5", g1.digest], ["orig.2", g2.diff], [
            "orig.2.md5",
            g2.digest,
          ]]
        ) {
          fs.writeFileSync(path.join(dir, f as string), b);
        }
        fs.writeFileSync(path.join(dir, "orig.ver"), "2\n");
        const url = `s3://${BUCKET}/${t.name}/original/orig`;
        const c = await s3run(t, ["copy", "orig", url], { cwd: dir });
        assert.equal(c.code, 0, c.stderr);
        const l = JSON.parse((await s3run(t, ["list", url, "--json"])).stdout.toString());
        assert.deepEqual(l.generations.map((g: { sourceSize: number }) => g.sourceSize), [
          v1.length,
          v2.length,
        ]);
        for (const [g, v] of [[1, v1], [2, v2]] as const) {
          const out = path.join(dir, `r${g}.img`);
          const r = await s3run(t, ["restore", url, out, "-g", String(g)]);
          assert.equal(r.code, 0, r.stderr);
          assert.ok(fs.readFileSync(out).equals(v), `generation ${g}`);
        }
        const v = await s3run(t, ["verify", url]);
        assert.match(v.stdout.toString(), /generation 2: OK .*manifest matches/);
      });

      it("backup --copy-to publishes each new generation in S3; status reads the S3 chain", async () => {
        const dir = tempDir();
        fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(1 << 20, 3));
        const url = `s3://${BUCKET}/${t.name}/copy-to/db`;
        for (let g = 1; g <= 2; g++) {
          if (g > 1) changeBlocks(path.join(dir, "src.img"), BS, 5, 1, 9);
          const r = await s3run(t, [
            "backup",
            "db",
            "src.img",
            "--block-size",
            String(BS),
            "--copy-to",
            url,
            "--json",
          ], {
            cwd: dir,
          });
          assert.equal(r.code, 0, r.stderr);
          assert.deepEqual(JSON.parse(r.stdout.toString()).copy.copied, [g]);
        }
        const s = await s3run(t, ["status", url]);
        assert.equal(s.code, 0, s.stderr);
        assert.match(s.stdout.toString(), new RegExp(`^${url}: OK: generation 2`));
        const out = path.join(dir, "r.img");
        assert.equal((await s3run(t, ["restore", url, out])).code, 0);
        assert.equal(sha256File(out), sha256File(path.join(dir, "src.img")));
      });

      it("backup straight into S3: full and incrementals stream into the bucket; the next run reads the cached digest", async () => {
        const dir = tempDir();
        const img = path.join(dir, "src.img");
        fs.writeFileSync(img, pseudoRandom(3 << 20, 11));
        const prefix = `${t.name}/direct/`;
        const url = `s3://${BUCKET}/${prefix}db`;
        const sums: string[] = [];
        for (let g = 1; g <= 3; g++) {
          if (g > 1) changeBlocks(img, BS, 7 * g, 2, 40 + g);
          const r = await s3run(t, [
            "backup",
            url,
            "src.img",
            "--block-size",
            String(BS),
            "--compress",
            "zstd",
          ], {
            cwd: dir,
          });
          assert.equal(r.code, 0, r.stderr);
          assert.match(r.stderr, new RegExp(`db\\.${g} .*written to db\\.${g}\\.[0-9a-f]{8}\\.zst`));
          sums.push(sha256File(img));
        }
        // nothing of the chain was written beside the source: the diffs went to the bucket
        assert.deepEqual(fs.readdirSync(dir), ["src.img"]);
        assert.equal(rgw.listKeys(BUCKET, prefix).length, 1 + 3 * 3);
        const v = await s3run(t, ["verify", url]);
        assert.equal(v.code, 0, v.stdout.toString());
        for (let g = 1; g <= 3; g++) {
          const out = path.join(dir, `r${g}.img`);
          assert.equal((await s3run(t, ["restore", url, out, "-g", String(g)])).code, 0);
          assert.equal(sha256File(out), sums[g - 1]);
        }
        // a cached digest that differs from the manifest is fetched again: the next incremental is right
        const cached = path.join(
          cache,
          "blockdiff",
          "s3",
          new URL(rgw.endpoint).host.replace(":", "_"),
          BUCKET,
          t.name,
          "direct",
          "db.3.md5",
        );
        const bytes = fs.readFileSync(cached);
        bytes[bytes.length - 1] ^= 1;
        fs.writeFileSync(cached, bytes);
        changeBlocks(img, BS, 30, 1, 77);
        const r = await s3run(t, ["backup", url, "src.img", "--json"], { cwd: dir });
        assert.equal(r.code, 0, r.stderr);
        assert.equal(JSON.parse(r.stdout.toString()).manifest.blocksChanged, 1);
        const out = path.join(dir, "r4.img");
        assert.equal((await s3run(t, ["restore", url, out])).code, 0);
        assert.equal(sha256File(out), sha256File(img));
      });

      it("a remote source over SSH backed up straight into S3: the agent's diff streams into the bucket", {
        skip: !sshdAvailable() && "needs root and sshd",
      }, async () => {
        const sshd = await startSshd();
        try {
          const dir = tempDir();
          const img = path.join(dir, "src.img");
          fs.writeFileSync(img, pseudoRandom((3 << 20) + 123, 41)); // a short last block too
          const url = `s3://${BUCKET}/${t.name}/remote/db`;
          const sums: string[] = [];
          for (let g = 1; g <= 2; g++) {
            if (g > 1) changeBlocks(img, BS, 17, 3, 42);
            const r = await s3run(t, [
              "backup",
              url,
              `root@127.0.0.1:${sshd.port}:${img}`,
              "--block-size",
              String(BS),
              "--compress",
              "zstd",
              "-i",
              sshd.clientKey,
              "--known-hosts",
              sshd.knownHosts,
            ], { env: { SSH_AUTH_SOCK: "" } });
            assert.equal(r.code, 0, r.stderr);
            sums.push(sha256File(img));
          }
          await restoresAll(t, dir, url, { 1: sums[0], 2: sums[1] });
          assert.equal((await s3run(t, ["verify", url])).code, 0);
        } finally {
          sshd.stop();
        }
      });

      it("--metrics of a backup, verify and prune of an S3 chain: the chain as s3://BUCKET/PREFIX, its newest generation", async () => {
        const dir = tempDir();
        fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(1 << 20, 51));
        const url = `s3://${BUCKET}/${t.name}/metrics/db`;
        const runs = [
          ["backup", url, "src.img", "--block-size", String(BS)],
          ["backup", url, "src.img"],
          ["verify", url],
          ["prune", url, "--keep-last", "1"],
        ];
        for (const [i, args] of runs.entries()) {
          const file = path.join(dir, `m${i}.prom`);
          const r = await s3run(t, [...args, "--metrics", file], { cwd: dir });
          assert.equal(r.code, 0, r.stderr);
          const text = fs.readFileSync(file, "utf8");
          const labels = `chain="db",dir="s3://${BUCKET}/${t.name}/metrics",command="${args[0]}"`;
          assert.match(text, new RegExp(`^blockdiff_last_run_exit_code\\{${labels}\\} 0$`, "m"), text);
          assert.match(
            text,
            new RegExp(`^blockdiff_newest_generation\\{${labels}\\} ${i === 0 ? 1 : 2}$`, "m"),
            text,
          );
        }
      });

      it("fault: radosgw killed during a backup into S3: nothing is published, the next backup is fine", async () => {
        const dir = tempDir();
        const img = path.join(dir, "src.img");
        fs.writeFileSync(img, pseudoRandom(96 << 20, 12));
        const prefix = `${t.name}/direct-killed/`;
        const url = `s3://${BUCKET}/${prefix}db`;
        const b = start(t, ["backup", url, "src.img", "--block-size", String(BS)], {
          cwd: dir,
          env: s3env(),
        });
        await waitUntil(async () => (await uploadsUnder(prefix)) > 0, "the diff's upload started", 30000, 20);
        await rgw.killGateway();
        const r = await b.done;
        await rgw.startGateway();
        assert.notEqual(r.code, 0);
        assert.deepEqual(rgw.listKeys(BUCKET, prefix).filter((k) => /\.(json|ver)$/.test(k)), []);
        const again = await s3run(t, ["backup", url, "src.img", "--block-size", String(BS)], { cwd: dir });
        assert.equal(again.code, 0, again.stderr);
        assert.equal(await uploadsUnder(prefix), 0);
        assert.equal(rgw.listKeys(BUCKET, prefix).length, 4, rgw.listKeys(BUCKET, prefix).join(" "));
        const out = path.join(dir, "r.img");
        assert.equal((await s3run(t, ["restore", url, out])).code, 0);
        assert.equal(sha256File(out), sha256File(img));
      });

      it("security: two backups into one S3 chain at once: exactly one publishes the generation (10 trials)", async () => {
        const dir = tempDir();
        const img = path.join(dir, "src.img");
        fs.writeFileSync(img, pseudoRandom(4 << 20, 13));
        for (let trial = 0; trial < 10; trial++) {
          const prefix = `${t.name}/two-writers${trial}/`;
          const url = `s3://${BUCKET}/${prefix}db`;
          // different caches: as two hosts would (one host's runs are kept apart by its lock)
          const runs = await Promise.all(
            [0, 1].map((k) =>
              start(t, ["backup", url, "src.img", "--block-size", String(BS)], {
                cwd: dir,
                env: s3env({ XDG_CACHE_HOME: path.join(dir, `cache${k}`) }),
              }).done
            ),
          );
          const ok = runs.filter((r) => r.code === 0);
          assert.equal(ok.length, 1, runs.map((r) => `${r.code} ${r.stderr}`).join("\n"));
          const lost = runs.find((r) => r.code !== 0)!;
          expectFailure(
            lost,
            4,
            /generation 1 of s3:\/\/.* was published by another run meanwhile|another run published this generation meanwhile/,
          );
          const keys = rgw.listKeys(BUCKET, prefix);
          assert.equal(keys.length, 4, keys.join(" "));
        }
      });

      it("prune of an S3 chain: kept generations restore byte-exact, removed ones say where they went, no object is left over", async () => {
        const dir = tempDir();
        const prefix = `${t.name}/prune/`;
        const url = `s3://${BUCKET}/${prefix}db`;
        const sums = await s3Chain(t, dir, url, 5);
        const p = await s3run(t, ["prune", url, "--keep-last", "2", "--json"]);
        assert.equal(p.code, 0, p.stderr);
        const l = await s3run(t, ["list", url, "--json"]);
        assert.deepEqual(
          JSON.parse(l.stdout.toString()).generations.map((g: { generation: number }) => g.generation),
          [4, 5],
        );
        await restoresAll(t, dir, url, { 4: sums[3], 5: sums[4] });
        expectFailure(
          await s3run(t, ["restore", url, path.join(dir, "x.img"), "-g", "2"]),
          2,
          /removed by prune/,
        );
        assert.equal((await s3run(t, ["verify", url])).code, 0);
        assert.equal(rgw.listKeys(BUCKET, prefix).length, 1 + 2 * 3, rgw.listKeys(BUCKET, prefix).join(" "));
        // and a backup with --prune goes on from there
        changeBlocks(path.join(dir, "src.img"), BS, 9, 1, 99);
        const b = await s3run(t, ["backup", url, "src.img", "--prune", "--keep-last", "2"], { cwd: dir });
        assert.equal(b.code, 0, b.stderr);
        await restoresAll(t, dir, url, { 5: sums[4], 6: sha256File(path.join(dir, "src.img")) });
        assert.equal(rgw.listKeys(BUCKET, prefix).length, 1 + 2 * 3);
      });

      it(
        "fault: prune of an S3 chain SIGKILLed or its server killed at any point (10 trials): every kept generation restores, the next prune finishes",
        {
          // one run of the steps is enough: the source runs the same code, each start costing a Deno
          skip: t.name !== "binary" && "the binary runs it",
        },
        async () => {
          for (let trial = 0; trial < 10; trial++) {
            const dir = tempDir();
            const prefix = `${t.name}/prune-kill${trial}/`;
            const url = `s3://${BUCKET}/${prefix}db`;
            const sums = await s3Chain(t, dir, url, 4, 6 << 20);
            const p = start(t, ["prune", url, "--keep-last", "1"], { env: s3env() });
            const gateway = trial % 2 === 1;
            await new Promise((r) => setTimeout(r, 40 + trial * 45));
            if (gateway) await rgw.killGateway();
            else p.child.kill("SIGKILL");
            await p.done;
            if (gateway) await rgw.startGateway();
            // whatever the step, the newest generation restores, and so does every generation still listed
            const l = await s3run(t, ["list", url, "--json"]);
            assert.equal(l.code, 0, l.stderr);
            const listed: number[] = JSON.parse(l.stdout.toString()).generations.map((
              g: { generation: number },
            ) => g.generation);
            assert.equal(listed.at(-1), 4);
            await restoresAll(t, dir, url, Object.fromEntries(listed.map((g) => [g, sums[g - 1]])));
            const again = await s3run(t, ["prune", url, "--keep-last", "1"]);
            assert.equal(again.code, 0, again.stderr);
            await restoresAll(t, dir, url, { 4: sums[3] });
            assert.equal(await uploadsUnder(prefix), 0);
            assert.equal(
              rgw.listKeys(BUCKET, prefix).length,
              1 + 3,
              `trial ${trial}: ${rgw.listKeys(BUCKET, prefix).join(" ")}`,
            );
          }
        },
      );

      it(
        "fault: SIGKILL at each S3 request of a backup, a copy and a prune: what is listed restores, the next run finishes, nothing is left over",
        {
          // one run of the steps is enough: the source runs the same code, each start costing a Deno
          skip: t.name !== "binary" && "the binary runs it",
        },
        async () => {
          const proxy = await startS3Proxy(rgw.endpoint);
          const env = { AWS_ENDPOINT_URL: proxy.endpoint };
          const scenarios: {
            name: string;
            /** Makes the chain as it is before the run; returns the command and the final generations. */
            setup: (dir: string, url: string) => Promise<{ args: string[]; final: number[] }>;
          }[] = [
            {
              name: "backup (a multipart upload)",
              setup: (dir, url) => {
                fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(20 << 20, 31));
                return Promise.resolve({
                  args: ["backup", url, "src.img", "--block-size", String(BS)],
                  final: [1],
                });
              },
            },
            {
              name: "copy",
              setup: async (dir, url) => {
                await localChain(t, dir, { gens: 2, size: 1 << 20, compress: "gzip" });
                return { args: ["copy", "db", url], final: [1, 2] };
              },
            },
            {
              name: "prune",
              setup: async (dir, url) => {
                await s3Chain(t, dir, url, 3, 1 << 20, env);
                return { args: ["prune", url, "--keep-last", "1"], final: [3] };
              },
            },
          ];
          try {
            for (const sc of scenarios) {
              let steps = Infinity;
              for (let k = -1; k < steps; k++) {
                const dir = tempDir();
                const prefix = `${t.name}/steps/${sc.name.split(" ")[0]}${k}/`;
                const url = `s3://${BUCKET}/${prefix}db`;
                const { args, final } = await sc.setup(dir, url);
                const images = fs.existsSync(path.join(dir, "src.img"))
                  ? sha256File(path.join(dir, "src.img"))
                  : null;
                proxy.reset();
                const run1 = start(t, args, { cwd: dir, env: s3env(env) });
                if (k >= 0) proxy.stopAt(k, () => run1.child.kill("SIGKILL"));
                const r = await run1.done;
                if (k < 0) {
                  assert.equal(r.code, 0, r.stderr);
                  steps = proxy.requests.length; // the run's requests: each is a step to be killed at
                  continue;
                }
                const what = `${sc.name}, killed at request ${k} (${proxy.requests[k]})`;
                proxy.reset();
                // whatever it was killed at: each generation listed restores (or there is none yet)
                const l = await s3run(t, ["list", url, "--json"], { env });
                if (l.code === 0) {
                  for (const g of JSON.parse(l.stdout.toString()).generations) {
                    const out = path.join(dir, "check.img");
                    const rr = await s3run(t, ["restore", url, out, "-g", String(g.generation), "--force"], {
                      env,
                    });
                    assert.equal(rr.code, 0, `${what}: generation ${g.generation}: ${rr.stderr}`);
                  }
                } else assert.match(l.stderr, /no backup chain/, what);
                // and the next run finishes the job
                const again = await s3run(t, args, { cwd: dir, env });
                assert.equal(again.code, 0, `${what}: ${again.stderr}`);
                const gens = JSON.parse((await s3run(t, ["list", url, "--json"], { env })).stdout.toString())
                  .generations.map((g: { generation: number }) => g.generation);
                if (sc.name !== "backup (a multipart upload)") assert.deepEqual(gens, final, what);
                if (images && sc.name.startsWith("backup")) {
                  const out = path.join(dir, "last.img");
                  assert.equal((await s3run(t, ["restore", url, out], { env })).code, 0);
                  assert.equal(sha256File(out), images, what);
                }
                assert.equal(await uploadsUnder(prefix), 0, `${what}: an upload is left`);
                const keys = rgw.listKeys(BUCKET, prefix);
                assert.equal(keys.length, 1 + 3 * gens.length, `${what}: ${keys.join(" ")}`);
              }
              assert.ok(steps >= 6, `${sc.name}: only ${steps} requests?`);
            }
          } finally {
            await proxy.close();
          }
        },
      );

      it("backup --copy-to with the server down: the backup stands, the run fails with one line", async () => {
        const dir = tempDir();
        fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(1 << 20, 4));
        const r = await run(t, [
          "backup",
          "db",
          "src.img",
          "--copy-to",
          `s3://${BUCKET}/x/db`,
          "--s3-endpoint",
          "http://127.0.0.1:1",
        ], { cwd: dir, env: { ...s3env(), AWS_ENDPOINT_URL: "" } });
        assert.equal(r.code, 1);
        // the backup's own line, then the failure's
        assert.match(
          r.stderr.trim().split("\n")[1],
          /^blockdiff: generation 1 of db was backed up, but the copy to s3:\/\/.* failed: .*connection refused/,
        );
        assert.equal(fs.readFileSync(path.join(dir, "db.ver"), "utf8"), "1\n");
      });

      for (const how of ["radosgw killed", "copy SIGKILLed"]) {
        it(`fault: ${how} mid-upload: nothing is published; the next copy publishes and cleans up`, async () => {
          const dir = tempDir();
          await localChain(t, dir, { gens: 1, size: 96 << 20, compress: "none" });
          const prefix = `${t.name}/${how.split(" ")[0]}-killed/`;
          const url = `s3://${BUCKET}/${prefix}db`;
          const c = start(t, ["copy", "db", url], { cwd: dir, env: s3env() });
          // the digest is uploaded first, then the diff's parts
          await waitUntil(
            () => rgw.listKeys(BUCKET, prefix).some((k) => k.endsWith(".md5")),
            "digest uploaded",
          );
          if (how === "radosgw killed") await rgw.killGateway();
          else c.child.kill("SIGKILL");
          const r = await c.done;
          if (how === "radosgw killed") {
            await rgw.startGateway();
            assert.notEqual(r.code, 0);
            oneLine(r.stderr);
          }
          assert.deepEqual(rgw.listKeys(BUCKET, prefix).filter((k) => /\.(json|ver)$/.test(k)), []);
          expectFailure(await s3run(t, ["list", url]), 1, /no backup chain/);
          const again = await s3run(t, ["copy", "db", url], { cwd: dir });
          assert.equal(again.code, 0, again.stderr);
          assert.match(again.stderr, /removed a leftover of an incomplete run|aborted an unfinished upload/);
          assert.equal(await uploadsUnder(prefix), 0);
          const keys = rgw.listKeys(BUCKET, prefix);
          assert.equal(keys.length, 4, keys.join(" ")); // .ver, manifest, digest, diff
          assert.equal((await s3run(t, ["verify", url])).code, 0);
        });
      }

      it("fault: radosgw killed during a restore from S3: one line, exit 1, no target left", async () => {
        const dir = tempDir();
        await localChain(t, dir, { gens: 1, size: 96 << 20, compress: "none" });
        const url = `s3://${BUCKET}/${t.name}/restore-killed/db`;
        assert.equal((await s3run(t, ["copy", "db", url], { cwd: dir })).code, 0);
        const out = path.join(dir, "r.img");
        const r = start(t, ["restore", url, out], { env: s3env() });
        await waitUntil(
          () => fs.readdirSync(dir).some((f) => f.startsWith("r.img.tmp-")),
          "the restore writing",
          30000,
          10,
        );
        await rgw.killGateway();
        const done = await r.done;
        await rgw.startGateway();
        expectFailure(
          done,
          1,
          /reading .*db\.1\.[0-9a-f]{8} in s3:\/\/.*: (connection refused|the connection was reset)/,
        );
        assert.deepEqual(fs.readdirSync(dir).filter((f) => f.startsWith("r.img")), []);
      });

      it("fault: killed between the manifest and .ver: the generation counts as published, the next copy goes on", async () => {
        const dir = tempDir();
        const sums = await localChain(t, dir, { gens: 3, size: 1 << 20, compress: "zstd" });
        const prefix = `${t.name}/no-ver/`;
        const url = `s3://${BUCKET}/${prefix}db`;
        fs.writeFileSync(path.join(dir, "db.ver"), "2\n"); // copy generations 1..2 only
        assert.equal((await s3run(t, ["copy", "db", url], { cwd: dir })).code, 0);
        rgw.putObjectRaw(BUCKET, `${prefix}db.ver`, new TextEncoder().encode("1\n")); // as if .ver never followed
        const l = await s3run(t, ["list", url, "--json"]);
        assert.deepEqual(JSON.parse(l.stdout.toString()).generations.length, 2);
        fs.writeFileSync(path.join(dir, "db.ver"), "3\n");
        const c = await s3run(t, ["copy", "db", url, "--json"], { cwd: dir });
        assert.equal(c.code, 0, c.stderr);
        assert.deepEqual(JSON.parse(c.stdout.toString()).copied, [3]);
        const out = path.join(dir, "r.img");
        assert.equal((await s3run(t, ["restore", url, out])).code, 0);
        assert.equal(sha256File(out), sums[2]);
      });

      it("security: of concurrent copies of a generation exactly one publishes it (10 trials)", async () => {
        const dir = tempDir();
        const sums = await localChain(t, dir, { gens: 1, size: 24 << 20, compress: "none" });
        for (let trial = 0; trial < 10; trial++) {
          const prefix = `${t.name}/race${trial}/`;
          const url = `s3://${BUCKET}/${prefix}db`;
          const runs = await Promise.all(
            [0, 1].map(() => start(t, ["copy", "db", url], { cwd: dir, env: s3env() }).done),
          );
          const published = runs.filter((r) => r.code === 0 && /copied generation 1/.test(r.stderr));
          assert.equal(published.length, 1, runs.map((r) => r.stderr).join("\n"));
          for (const r of runs) {
            if (r === published[0]) continue;
            if (r.code === 0) assert.match(r.stderr, /up to date/);
            else {expectFailure(
                r,
                4,
                /generation 1 of s3:\/\/.* was published by another run meanwhile|another run published this generation meanwhile/,
              );}
          }
          const keys = rgw.listKeys(BUCKET, prefix);
          assert.equal(keys.filter((k) => k.endsWith(".json")).length, 1);
          assert.equal(keys.length, 4, keys.join(" "));
        }
        const out = path.join(dir, "r.img");
        assert.equal((await s3run(t, ["restore", `s3://${BUCKET}/${t.name}/race9/db`, out])).code, 0);
        assert.equal(sha256File(out), sums[0]);
      });

      it("fault: a corrupted diff or digest object: verify says BAD (exit 3), restore refuses (exit 3)", async () => {
        const dir = tempDir();
        await localChain(t, dir, { gens: 2, size: 1 << 20, compress: "none" });
        for (const kind of ["diff", "digest"]) {
          const prefix = `${t.name}/corrupt-${kind}/`;
          const url = `s3://${BUCKET}/${prefix}db`;
          assert.equal((await s3run(t, ["copy", "db", url], { cwd: dir })).code, 0);
          assert.equal((await s3run(t, ["verify", url])).code, 0); // the cache holds the good digest now
          const key = rgw.listKeys(BUCKET, prefix).find((k) =>
            /db\.2\.[0-9a-f]{8}/.test(k) && (kind === "digest") === k.endsWith(".md5")
          )!;
          const bytes = rgw.getObjectRaw(BUCKET, key)!;
          bytes[bytes.length - 100] ^= 0x40;
          rgw.putObjectRaw(BUCKET, key, bytes);
          assert.equal(rgw.getObjectRaw(BUCKET, key)![bytes.length - 100], bytes[bytes.length - 100], "put");
          const v = await s3run(t, ["verify", url]);
          assert.equal(v.code, 3, v.stderr + v.stdout);
          assert.match(v.stdout.toString(), /generation 2: BAD/);
          const out = path.join(dir, `r-${kind}.img`);
          const r = await s3run(t, ["restore", url, out]);
          expectFailure(
            r,
            3,
            kind === "digest"
              ? /SHA-256 differs from its manifest|does not match|holds no record/
              : /does not match|corrupt/,
          );
          assert.equal(fs.existsSync(out), false);
        }
      });

      it("security: wrong credentials: one line, exit 1, the secret appears nowhere", async () => {
        const dir = tempDir();
        await localChain(t, dir, { gens: 1, size: 64 << 10, compress: "none" });
        const secret = "WrongSecretKey0123456789abcdefghij";
        for (const args of [["copy", "db", `s3://${BUCKET}/x/db`], ["list", `s3://${BUCKET}/x/db`]]) {
          const r = await s3run(t, args, { cwd: dir, env: { AWS_SECRET_ACCESS_KEY: secret } });
          expectFailure(r, 1, /refused the credentials|access denied \(wrong credentials/);
          oneLine(r.stderr);
          assert.equal(r.stderr.includes(secret) || r.stderr.includes(rgw.secretKey), false);
        }
        const none = await s3run(t, ["list", `s3://${BUCKET}/x/db`], {
          env: { AWS_ACCESS_KEY_ID: "", AWS_SECRET_ACCESS_KEY: "", HOME: dir, AWS_PROFILE: "" },
        });
        expectFailure(none, 1, /no S3 credentials found/);
        oneLine(none.stderr);
      });

      it("credentials, region and endpoint from AWS_PROFILE's ~/.aws files, or --s3-endpoint, as the AWS tools read them", async () => {
        const dir = tempDir();
        await localChain(t, dir, { gens: 1, size: 256 << 10, compress: "zstd" });
        const home = path.join(dir, "home");
        fs.mkdirSync(path.join(home, ".aws"), { recursive: true });
        fs.writeFileSync(
          path.join(home, ".aws", "credentials"),
          `[offsite]\naws_access_key_id = ${rgw.accessKey}\naws_secret_access_key = ${rgw.secretKey}\n`,
        );
        fs.writeFileSync(
          path.join(home, ".aws", "config"),
          `[profile offsite]\nregion = us-east-1\nendpoint_url = ${rgw.endpoint}\n`,
        );
        const url = `s3://${BUCKET}/${t.name}/profile/db`;
        const bare = {
          AWS_ACCESS_KEY_ID: "",
          AWS_SECRET_ACCESS_KEY: "",
          AWS_ENDPOINT_URL: "",
          AWS_REGION: "",
          HOME: home,
        };
        const c = await s3run(t, ["copy", "db", url], { cwd: dir, env: { ...bare, AWS_PROFILE: "offsite" } });
        assert.equal(c.code, 0, c.stderr);
        // keys from the environment, the server from --s3-endpoint, no region anywhere
        const l = await s3run(t, ["list", url, "--s3-endpoint", rgw.endpoint], {
          env: { AWS_ENDPOINT_URL: "", AWS_REGION: "", HOME: home },
        });
        assert.equal(l.code, 0, l.stderr);
        assert.match(l.stdout.toString(), /^1 .*db\.1\.[0-9a-f]{8}\.zst/m);
        const missing = await s3run(t, ["list", url], { env: { ...bare, AWS_PROFILE: "nosuch" } });
        expectFailure(missing, 2, /AWS_PROFILE=nosuch: no such profile in .*credentials or .*config/);
      });

      it("security: a versioned bucket whose server ignores If-None-Match there is refused for writing (one line, exit 1), read as any", async () => {
        const dir = tempDir();
        await localChain(t, dir, { gens: 1, size: 256 << 10, compress: "zstd" });
        const bucket = `versioned-${t.name}`;
        await rgw.createBucket(bucket);
        const url = `s3://${bucket}/db`;
        assert.equal((await s3run(t, ["copy", "db", url], { cwd: dir })).code, 0); // before versioning
        await setVersioning(bucket, "Enabled");
        fs.writeFileSync(path.join(dir, "src.img"), pseudoRandom(256 << 10, 99));
        for (
          const args of [["copy", "db", `s3://${bucket}/other`], ["backup", url, "src.img"], [
            "prune",
            url,
            "--keep-last",
            "1",
          ]]
        ) {
          const r = await s3run(t, args, { cwd: dir });
          expectFailure(
            r,
            1,
            new RegExp(`s3://${bucket} has versioning enabled and its server ignores If-None-Match`),
          );
        }
        assert.deepEqual(rgw.listKeys(bucket, "").filter((k) => k.startsWith("other")), []);
        const out = path.join(dir, "r.img");
        assert.equal((await s3run(t, ["restore", url, out])).code, 0);
        // suspended versioning: radosgw honours the conditional create again
        await setVersioning(bucket, "Suspended");
        assert.equal((await s3run(t, ["backup", url, "src.img"], { cwd: dir })).code, 0);
      });

      it("a missing bucket, or a server that is down: one line, exit 1", async () => {
        const r = await s3run(t, ["list", "s3://no-such-bucket-here/x/db"]);
        expectFailure(r, 1, /s3:\/\/no-such-bucket-here .*no such bucket/);
        oneLine(r.stderr);
        const down = await s3run(t, [
          "restore",
          `s3://${BUCKET}/x/db`,
          "/tmp/never",
          "--s3-endpoint",
          "http://127.0.0.1:1",
        ]);
        expectFailure(down, 1, /connection refused/);
        oneLine(down.stderr);
      });

      it("bad input to every S3 option and location: one line each, exit 2", async () => {
        const dir = tempDir();
        await localChain(t, dir, { gens: 1, size: 64 << 10, compress: "none" });
        const cases: [string[], RegExp][] = [
          [["list", "s3://ab/x/db"], /invalid bucket name 'ab'/],
          [["list", "s3://Bad_Bucket/db"], /invalid bucket name/],
          [["list", `s3://${BUCKET}`], /no chain name/],
          [["list", `s3://${BUCKET}/x/`], /no chain name/],
          [["list", `s3://${BUCKET}/x//db`], /invalid key path/],
          [["restore", `s3://${BUCKET}/../db`, "out.img"], /invalid key path/],
          [["list", `s3://${BUCKET}/db`, "--s3-endpoint", "ftp://host"], /must start with http/],
          [["list", `s3://${BUCKET}/db`, "--s3-endpoint", "not a url"], /is not a URL/],
          [
            ["list", `s3://${BUCKET}/db`, "--s3-endpoint", "http://key:secret@host"],
            /do not belong in the URL/,
          ],
          [["list", "db", "--s3-endpoint", "http://host"], /not an s3:\/\/ location/],
          [["restore", `s3://${BUCKET}/db`, "out.img", "--monthly"], /--monthly: not for chains in S3/],
          [["copy", `s3://${BUCKET}/db`, `s3://${BUCKET}/db2`], /the source must be a local chain/],
          [["copy", "db", "/tmp/elsewhere"], /expected s3:\/\/BUCKET/],
          [["copy", "db"], /usage: blockdiff copy/],
          [["backup", "db", "src.img", "--copy-to", "/tmp/x"], /--copy-to: '\/tmp\/x' is not an s3:/],
          [
            ["backup", "db", "src.img", "--s3-endpoint", "http://h"],
            /--s3-endpoint goes with --copy-to or NAME s3/,
          ],
          [
            ["backup", "db", "src.img", "--copy-to", `s3://${BUCKET}/x/db`, "--s3-endpoint", "gopher://h"],
            /must start with http/,
          ],
        ];
        for (const [args, re] of cases) {
          const r = await s3run(t, args, { cwd: dir });
          expectFailure(r, 2, re);
          oneLine(r.stderr);
        }
        // nothing was backed up by the refused backups
        assert.equal(fs.readFileSync(path.join(dir, "db.ver"), "utf8"), "1\n");
      });
    });
  }
});
