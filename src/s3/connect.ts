/**
 * Reaching a bucket: the AWS SDK (client.ts) is loaded here, and only when a command names an s3://
 * location, so local runs never load it.
 */
import type * as Client from "./client.ts";
import { BlockdiffError, type ExitCode } from "../errors.ts";
import { moduleUrl } from "../runtime.ts";
import { type Bucket, type BucketOptions, S3_CLIENT_MODULE, S3_FAILURE } from "./bucket.ts";

/** Loads the SDK, finds the endpoint, region and credentials, and checks the bucket can be reached. */
export async function connectBucket(o: BucketOptions): Promise<Bucket> {
  const client: typeof Client = await import(moduleUrl(S3_CLIENT_MODULE).href);
  const bucket = await client.openBucket(o).catch(rethrow);
  // every call's failure becomes the main program's own error class
  return new Proxy(bucket, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== "function") return v;
      return (...a: unknown[]) =>
        (v as (...a: unknown[]) => Promise<unknown>).apply(target, a).catch(rethrow);
    },
  });
}

function rethrow(err: unknown): never {
  const e = err as { name?: string; message?: string; exitCode?: ExitCode };
  if (e?.name === S3_FAILURE) throw new BlockdiffError(e.message ?? "S3 failure", e.exitCode ?? 1);
  throw err;
}
