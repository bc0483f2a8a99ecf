/** `s3://bucket/prefix/NAME`: where a chain lives in object storage. */
import { UsageError } from "../errors.ts";

export interface S3Location {
  bucket: string;
  /** The keys' common start, "" or ending in "/". */
  prefix: string;
  name: string;
  /** As given, for messages. */
  url: string;
}

export function isS3Location(spec: string): boolean {
  return spec.startsWith("s3://");
}

export function parseS3Location(spec: string): S3Location {
  const rest = spec.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const keyPath = slash < 0 ? "" : rest.slice(slash + 1);
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new UsageError(
      `${spec}: invalid bucket name '${bucket}' (3-63 characters: lowercase letters, digits, '.', '-')`,
    );
  }
  if (keyPath === "" || keyPath.endsWith("/")) {
    throw new UsageError(`${spec}: no chain name (expected s3://BUCKET/[PREFIX/]NAME)`);
  }
  const parts = keyPath.split("/");
  // deno-lint-ignore no-control-regex
  if (parts.some((p) => p === "" || p === "." || p === "..") || /[\x00-\x1f\x7f]/.test(keyPath)) {
    throw new UsageError(`${spec}: invalid key path (empty, '.' or '..' parts, or control characters)`);
  }
  const name = parts.pop()!;
  return { bucket, prefix: parts.map((p) => p + "/").join(""), name, url: spec };
}

/** `--s3-endpoint URL`: http(s)://host[:port] of a server other than AWS S3. */
export function parseEndpoint(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(
      `--s3-endpoint: '${value}' is not a URL (expected http://HOST[:PORT] or https://...)`,
    );
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new UsageError(`--s3-endpoint: '${value}' must start with http:// or https://`);
  }
  if (url.username || url.password) {
    throw new UsageError(
      "--s3-endpoint: credentials do not belong in the URL (use AWS_ACCESS_KEY_ID, AWS_PROFILE)",
    );
  }
  return value.replace(/\/+$/, "");
}
