/** What blockdiff asks of an S3 bucket: client.ts implements it with the AWS SDK, connect.ts loads that. */

/** The module with every use of the AWS SDK: an entry point of its own in the binary (scripts/build.ts). */
export const S3_CLIENT_MODULE = "src/s3/client.ts";
/** The name of the errors client.ts throws: one line for the user, and an exit code. */
export const S3_FAILURE = "BlockdiffS3Failure";

export interface BucketOptions {
  bucket: string;
  /** `--s3-endpoint`; else AWS_ENDPOINT_URL or the profile's endpoint_url, else AWS. */
  endpoint?: string;
}

export interface ObjectInfo {
  key: string;
  size: number;
  /** Without quotes; the MD5 of the content for an object written in one piece. */
  etag: string;
  lastModified: Date;
}

export interface UploadInfo {
  key: string;
  uploadId: string;
  initiated: Date;
}

export interface Bucket {
  readonly name: string;
  /** The object's content; null when there is no such key. */
  getText(key: string): Promise<string | null>;
  getBytes(key: string): Promise<Uint8Array | null>;
  /** Bytes [start, end) of an object, in the pieces they arrived in. */
  getRange(key: string, start: number, end: number): Promise<Uint8Array[]>;
  /** Every object whose key starts with `prefix`. */
  list(prefix: string): Promise<ObjectInfo[]>;
  put(key: string, body: Uint8Array): Promise<void>;
  /** Creates the object only if there is none of that key (If-None-Match: *); false when there was one. */
  putIfAbsent(key: string, body: Uint8Array): Promise<boolean>;
  remove(key: string): Promise<void>;
  createUpload(key: string): Promise<string>;
  /** Uploads part `part` (from 1); returns its ETag. */
  uploadPart(key: string, uploadId: string, part: number, body: Uint8Array): Promise<string>;
  completeUpload(key: string, uploadId: string, etags: string[]): Promise<void>;
  abortUpload(key: string, uploadId: string): Promise<void>;
  /** The multipart uploads under `prefix` not completed or aborted yet. */
  listUploads(prefix: string): Promise<UploadInfo[]>;
  /** The bucket's versioning: "Enabled", "Suspended", or "" (never enabled). */
  versioning(): Promise<string>;
}
