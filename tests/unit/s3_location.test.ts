/** s3://BUCKET/[PREFIX/]NAME and --s3-endpoint on the command line; an upload's part sizes. */
import assert from "node:assert/strict";
import { describe } from "node:test";
import { UsageError } from "../../src/errors.ts";
import { parseEndpoint, parseS3Location } from "../../src/s3/location.ts";
import type { Bucket } from "../../src/s3/bucket.ts";
import { ObjectUpload } from "../../src/s3/upload.ts";
import { it } from "../helpers.ts";

describe("s3 location", () => {
  it("splits bucket, prefix and chain name", () => {
    assert.deepEqual(parseS3Location("s3://backups/db"), {
      bucket: "backups",
      prefix: "",
      name: "db",
      url: "s3://backups/db",
    });
    assert.deepEqual(parseS3Location("s3://my.bucket-1/hosts/db1/mysql"), {
      bucket: "my.bucket-1",
      prefix: "hosts/db1/",
      name: "mysql",
      url: "s3://my.bucket-1/hosts/db1/mysql",
    });
  });

  it("refuses what is not a chain in a bucket, naming why", () => {
    const cases: [string, RegExp][] = [
      ["s3://", /invalid bucket name ''/],
      ["s3://ab/db", /invalid bucket name 'ab'/],
      ["s3://Upper/db", /invalid bucket name/],
      ["s3://-bucket/db", /invalid bucket name/],
      ["s3://bucket", /no chain name/],
      ["s3://bucket/", /no chain name/],
      ["s3://bucket/dir/", /no chain name/],
      ["s3://bucket/a//db", /invalid key path/],
      ["s3://bucket/../db", /invalid key path/],
      ["s3://bucket/a/./db", /invalid key path/],
      ["s3://bucket/a\ndb", /invalid key path/],
    ];
    for (const [spec, re] of cases) {
      assert.throws(
        () => parseS3Location(spec),
        (e: unknown) => e instanceof UsageError && re.test(e.message),
        spec,
      );
    }
  });

  it("--s3-endpoint takes http(s) URLs without credentials", () => {
    assert.equal(parseEndpoint("https://rgw.example.net/"), "https://rgw.example.net");
    assert.equal(parseEndpoint("http://127.0.0.1:7480"), "http://127.0.0.1:7480");
    assert.throws(() => parseEndpoint("rgw.example.net"), /is not a URL/);
    assert.throws(() => parseEndpoint("ftp://host"), /must start with http/);
    assert.throws(() => parseEndpoint("https://AKIA:secret@host"), /do not belong in the URL/);
  });
});

describe("s3 upload", () => {
  /** A bucket that keeps the parts' sizes (the upload's logic, not S3, is under test here). */
  function partRecorder() {
    const parts: number[] = [];
    let single: number | null = null;
    const bucket = {
      put: (_k: string, b: Uint8Array) => Promise.resolve(void (single = b.length)),
      createUpload: () => Promise.resolve("id"),
      uploadPart: (_k: string, _id: string, _n: number, b: Uint8Array) =>
        Promise.resolve(void parts.push(b.length)).then(() => "etag"),
      completeUpload: () => Promise.resolve(),
      abortUpload: () => Promise.resolve(),
    } as unknown as Bucket;
    return { bucket, parts, single: () => single };
  }

  it("sends an object that fits in one part as one PUT, a larger one in parts of at least 8 MiB", async () => {
    const small = partRecorder();
    const up = new ObjectUpload(small.bucket, "k", { expectedBytes: 0 });
    await up.write(new Uint8Array(3 << 20));
    await up.finish();
    assert.equal(small.single(), 3 << 20);
    assert.deepEqual(small.parts, []);
    const large = partRecorder();
    const up2 = new ObjectUpload(large.bucket, "k", { expectedBytes: 20 << 20 });
    for (let i = 0; i < 20; i++) await up2.write(new Uint8Array(1 << 20));
    await up2.finish();
    assert.deepEqual(large.parts, [8 << 20, 8 << 20, 4 << 20]);
  });

  it("sizes parts so that 5,000 cover the expected size, and doubles them every 1,000 parts", async () => {
    const r = partRecorder();
    const up = new ObjectUpload(r.bucket, "k", { expectedBytes: 100 * 2 ** 30 });
    const first = Math.ceil(100 * 2 ** 30 / 5000 / 2 ** 20) * 2 ** 20;
    await up.write(new Uint8Array(first + 1));
    await up.finish();
    assert.deepEqual(r.parts, [first, 1]);
    // an object of unknown size: 8 MiB parts, 16 MiB from part 1,001 on
    const grow = partRecorder();
    const up3 = new ObjectUpload(grow.bucket, "k", { expectedBytes: 0 });
    const chunk = new Uint8Array(8 << 20);
    for (let i = 0; i < 1001; i++) await up3.write(chunk);
    await up3.write(new Uint8Array(16 << 20));
    await up3.finish();
    assert.equal(grow.parts.length, 1002);
    assert.equal(grow.parts[999], 8 << 20);
    assert.equal(grow.parts[1000], 16 << 20);
  });
});
