/**
 * Every use of the AWS SDK, behind the small `Bucket` interface the rest of blockdiff uses. This module is an
 * entry point of its own in the binary (scripts/build.ts) and is loaded only when a command names an s3://
 * location (load.ts), so local runs neither load nor start it. Endpoint, region and credentials are found
 * as the AWS tools find them (environment, AWS_PROFILE, ~/.aws); secrets are never printed.
 */
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetBucketVersioningCommand,
  GetObjectCommand,
  HeadBucketCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { NodeHttpHandler } from "@smithy/node-http-handler";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { type Bucket, type BucketOptions, type ObjectInfo, S3_FAILURE, type UploadInfo } from "./bucket.ts";

/** A server that does not answer a connection or a request for this long is down or hung. */
const CONNECT_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** Finding credentials (profiles, SSO, instance metadata) that takes longer than this has failed. */
const CREDENTIALS_TIMEOUT_MS = 10_000;

/** The SDK reads these itself; one set but empty means unset, as for the shell's own variables. */
const AWS_VARIABLES = [
  "AWS_ACCESS_KEY_ID",
  "AWS_SECRET_ACCESS_KEY",
  "AWS_SESSION_TOKEN",
  "AWS_PROFILE",
  "AWS_REGION",
  "AWS_DEFAULT_REGION",
  "AWS_ENDPOINT_URL",
  "AWS_ENDPOINT_URL_S3",
  "AWS_SHARED_CREDENTIALS_FILE",
  "AWS_CONFIG_FILE",
];

export async function openBucket(o: BucketOptions): Promise<Bucket> {
  for (const v of AWS_VARIABLES) if (process.env[v] === "") delete process.env[v];
  checkProfile();
  // instance metadata (169.254.169.254) is AWS's: another server's credentials never come from it, and
  // where it is unreachable it costs minutes per request in the binary's runtime
  if (o.endpoint !== undefined && process.env.AWS_EC2_METADATA_DISABLED === undefined) {
    process.env.AWS_EC2_METADATA_DISABLED = "true";
  }
  const common = {
    ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
    // on-premises servers (radosgw, MinIO) are addressed as http://host/bucket/key
    forcePathStyle: true,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: CONNECT_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    }),
    requestChecksumCalculation: "WHEN_REQUIRED" as const,
    responseChecksumValidation: "WHEN_REQUIRED" as const,
  };
  let client = new S3Client(common);
  try {
    await client.config.region();
  } catch {
    // no region anywhere: servers other than AWS ignore it, AWS needs it
    if (o.endpoint === undefined && !process.env.AWS_ENDPOINT_URL) {
      throw new S3Failure(
        "no AWS region set for S3 (AWS_REGION, or region in ~/.aws/config for the profile)",
        2,
      );
    }
    client = new S3Client({ ...common, region: "us-east-1" });
  }
  await withTimeout(client.config.credentials(), CREDENTIALS_TIMEOUT_MS).catch((err) => {
    throw new S3Failure(
      `no S3 credentials found (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, ~/.aws/credentials)${
        err instanceof TimeoutFailure ? "" : `: ${oneLine(err)}`
      }`,
    );
  });
  const endpoint = o.endpoint ?? process.env.AWS_ENDPOINT_URL ?? "AWS S3";
  const bucket = new SdkBucket(client, o.bucket, endpoint);
  await bucket.checkAccess();
  return bucket;
}

/** A profile named in AWS_PROFILE that neither file has is a typo: said as such, not as missing keys. */
function checkProfile(): void {
  const name = process.env.AWS_PROFILE;
  if (name === undefined || name === "default") return;
  const aws = path.join(os.homedir(), ".aws");
  const files: [string, string][] = [
    [process.env.AWS_SHARED_CREDENTIALS_FILE ?? path.join(aws, "credentials"), name],
    [process.env.AWS_CONFIG_FILE ?? path.join(aws, "config"), `profile ${name}`],
  ];
  const has = ([file, section]: [string, string]) => {
    try {
      return fs.readFileSync(file, "utf8").split("\n").some((l) => l.trim() === `[${section}]`);
    } catch {
      return false;
    }
  };
  if (!files.some(has)) {
    throw new S3Failure(
      `AWS_PROFILE=${name}: no such profile in ${files.map(([f]) => f).join(" or ")}`,
      2,
    );
  }
}

class TimeoutFailure extends Error {}

/**
 * A failure to show as one line: connect.ts turns it into a BlockdiffError (this module is bundled apart,
 * so it has its own copy of every class it would import: the main program would not recognise them).
 */
class S3Failure extends Error {
  constructor(message: string, readonly exitCode = 1) {
    super(message);
    this.name = S3_FAILURE;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<never>((_, reject) => timer = setTimeout(() => reject(new TimeoutFailure()), ms));
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

class SdkBucket implements Bucket {
  constructor(private readonly client: S3Client, readonly name: string, private readonly endpoint: string) {}

  async checkAccess(): Promise<void> {
    await this.#send(
      () => this.client.send(new HeadBucketCommand({ Bucket: this.name })),
      "opening the bucket",
    );
  }

  async getText(key: string): Promise<string | null> {
    const r = await this.#send(
      () => this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key })),
      `reading ${key}`,
      true,
    );
    return r === null ? null : await r.Body!.transformToString("utf8");
  }

  async getBytes(key: string): Promise<Uint8Array | null> {
    const r = await this.#send(
      () => this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key })),
      `reading ${key}`,
      true,
    );
    return r === null ? null : await r.Body!.transformToByteArray();
  }

  async getRange(key: string, start: number, end: number): Promise<Uint8Array[]> {
    const action = `reading ${key}`;
    const r = await this.#send(
      () =>
        this.client.send(
          new GetObjectCommand({ Bucket: this.name, Key: key, Range: `bytes=${start}-${end - 1}` }),
        ),
      action,
    );
    // the response's own chunks: no copy into one buffer (a restore reads every diff this way)
    const chunks: Uint8Array[] = [];
    let got = 0;
    try {
      for await (const c of r.Body as AsyncIterable<Uint8Array>) {
        chunks.push(c);
        got += c.length;
      }
    } catch (err) {
      throw this.#describe(err, action);
    }
    if (got !== end - start) {
      throw new S3Failure(
        `reading ${this.#url(key)}: got ${got} bytes at ${start}, expected ${end - start} (shorter?)`,
        3,
      );
    }
    return chunks;
  }

  async list(prefix: string): Promise<ObjectInfo[]> {
    const out: ObjectInfo[] = [];
    let token: string | undefined;
    do {
      const r = await this.#send(
        () =>
          this.client.send(
            new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, ContinuationToken: token }),
          ),
        `listing ${prefix}`,
      );
      for (const o of r.Contents ?? []) {
        out.push({
          key: o.Key!,
          size: o.Size ?? 0,
          etag: (o.ETag ?? "").replaceAll('"', ""),
          lastModified: o.LastModified ?? new Date(0),
        });
      }
      token = r.IsTruncated ? r.NextContinuationToken : undefined;
    } while (token);
    return out;
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    await this.#send(
      () => this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body })),
      `writing ${key}`,
    );
  }

  async putIfAbsent(key: string, body: Uint8Array): Promise<boolean> {
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, IfNoneMatch: "*" }),
      );
      return true;
    } catch (err) {
      if (statusOf(err) === 412 || nameOf(err) === "PreconditionFailed") return false;
      throw this.#describe(err, `writing ${key}`);
    }
  }

  async remove(key: string): Promise<void> {
    await this.#send(
      () => this.client.send(new DeleteObjectCommand({ Bucket: this.name, Key: key })),
      `removing ${key}`,
    );
  }

  async createUpload(key: string): Promise<string> {
    const r = await this.#send(
      () => this.client.send(new CreateMultipartUploadCommand({ Bucket: this.name, Key: key })),
      `starting the upload of ${key}`,
    );
    return r.UploadId!;
  }

  async uploadPart(key: string, uploadId: string, part: number, body: Uint8Array): Promise<string> {
    const r = await this.#send(
      () =>
        this.client.send(
          new UploadPartCommand({
            Bucket: this.name,
            Key: key,
            UploadId: uploadId,
            PartNumber: part,
            Body: body,
          }),
        ),
      `uploading part ${part} of ${key}`,
    );
    return r.ETag!;
  }

  async completeUpload(key: string, uploadId: string, etags: string[]): Promise<void> {
    await this.#send(() =>
      this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.name,
          Key: key,
          UploadId: uploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      ), `completing the upload of ${key}`);
  }

  async abortUpload(key: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.name, Key: key, UploadId: uploadId }),
      );
    } catch (err) {
      if (statusOf(err) === 404) return; // already gone
      throw this.#describe(err, `aborting the upload of ${key}`);
    }
  }

  async versioning(): Promise<string> {
    const r = await this.#send(
      () => this.client.send(new GetBucketVersioningCommand({ Bucket: this.name })),
      "reading the bucket's versioning",
    );
    return r.Status ?? "";
  }

  async listUploads(prefix: string): Promise<UploadInfo[]> {
    const out: UploadInfo[] = [];
    let keyMarker: string | undefined, idMarker: string | undefined;
    for (;;) {
      const r = await this.#send(() =>
        this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.name,
            Prefix: prefix,
            KeyMarker: keyMarker,
            UploadIdMarker: idMarker,
          }),
        ), `listing the uploads under ${prefix}`);
      for (const u of r.Uploads ?? []) {
        out.push({ key: u.Key!, uploadId: u.UploadId!, initiated: u.Initiated ?? new Date(0) });
      }
      if (!r.IsTruncated) return out;
      keyMarker = r.NextKeyMarker;
      idMarker = r.NextUploadIdMarker;
    }
  }

  /** Runs one request; with `missingIsNull`, a missing key gives null. */
  async #send<T>(request: () => Promise<T>, action: string): Promise<T>;
  async #send<T>(request: () => Promise<T>, action: string, missingIsNull: true): Promise<T | null>;
  async #send<T>(request: () => Promise<T>, action: string, missingIsNull = false): Promise<T | null> {
    try {
      return await request();
    } catch (err) {
      if (
        missingIsNull &&
        (nameOf(err) === "NoSuchKey" || statusOf(err) === 404 && nameOf(err) !== "NoSuchBucket")
      ) {
        return null;
      }
      throw this.#describe(err, action);
    }
  }

  #url(key: string): string {
    return `s3://${this.name}/${key}`;
  }

  /** One line for what went wrong, with the server's own error name (never a secret). */
  #describe(err: unknown, action: string): S3Failure {
    const name = nameOf(err), status = statusOf(err);
    const where = `${action} in s3://${this.name} at ${this.endpoint}`;
    if (name === "NoSuchBucket" || (status === 404 && action === "opening the bucket")) {
      return new S3Failure(`${where}: no such bucket (create it first)`);
    }
    if (["InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"].includes(name)) {
      return new S3Failure(`${where}: the server refused the credentials (${name})`);
    }
    if (status === 403 && action === "opening the bucket" && name !== "AccessDenied") {
      // a HEAD's answer has no body to say why
      return new S3Failure(`${where}: access denied (wrong credentials, or no access to this bucket)`);
    }
    if (name === "AccessDenied" || status === 403) {
      return new S3Failure(`${where}: access denied (${name || status})`);
    }
    if (name === "NoSuchUpload") {
      // only a run that published this generation aborts another's upload of it (publish.ts)
      return new S3Failure(
        `${where}: another run published this generation meanwhile and aborted this upload`,
        4,
      );
    }
    const code = (err as { code?: string })?.code;
    if (code === "ECONNREFUSED") return new S3Failure(`${where}: connection refused (is the server up?)`);
    if (code === "ENOTFOUND" || code === "EAI_AGAIN") return new S3Failure(`${where}: unknown host`);
    if (name === "TimeoutError" || code === "ETIMEDOUT") {
      return new S3Failure(`${where}: the server did not answer in time`);
    }
    if (code === "ECONNRESET" || code === "EPIPE") return new S3Failure(`${where}: the connection was reset`);
    return new S3Failure(`${where}: ${name || "error"}${status ? ` (HTTP ${status})` : ""}: ${oneLine(err)}`);
  }
}

function nameOf(err: unknown): string {
  return (err as { name?: string; Code?: string })?.Code ?? (err as { name?: string })?.name ?? "";
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } })?.$metadata?.httpStatusCode;
}

function oneLine(err: unknown): string {
  const m = (err as Error)?.message ?? String(err);
  return (m === "UnknownError" ? "" : m).split("\n")[0].trim() || "unknown error";
}
