/**
 * The chain a command names: a local one (DIR/NAME), or one in a bucket (s3://BUCKET/[PREFIX/]NAME, with
 * `--s3-endpoint`), opened for reading or for a change.
 */
import { UsageError } from "../errors.ts";
import { removeAbsorbed } from "../s3/fold_upload.ts";
import { checkConditionalCreate } from "../s3/publish.ts";
import { openRemoteChain } from "../s3/open_chain.ts";
import { RunLock } from "../store/run_lock.ts";
import { openChainForWrite } from "../store/writer.ts";
import { isS3Location, parseEndpoint } from "../s3/location.ts";
import type { Chain } from "../store/chain.ts";
import { resolveChain } from "../store/monthly.ts";
import { type ParsedArgs, stringOpt } from "./args.ts";
import type { OptionSpec } from "./args.ts";

export const S3_ENDPOINT_OPTION: OptionSpec = { name: "s3-endpoint", kind: "value" };
export const S3_HELP =
  `  --s3-endpoint URL     S3 server of an s3://BUCKET/[PREFIX/]NAME chain (default: AWS_ENDPOINT_URL, the
                        profile's endpoint_url, else AWS); credentials and region as the AWS tools read them`;

export function s3Endpoint(args: ParsedArgs): string | undefined {
  const v = stringOpt(args, "s3-endpoint");
  return v === undefined ? undefined : parseEndpoint(v);
}

/** `--s3-endpoint` with a local chain NAME: a mistake, said before anything runs. */
export function refuseEndpointFor(spec: string, args: ParsedArgs): void {
  if (args.opts.has("s3-endpoint")) throw new UsageError(`--s3-endpoint: ${spec} is not an s3:// location`);
}

/** The chain `spec` names for a command that reads it (`--monthly` only for local chains). */
export async function openChainArg(
  spec: string,
  args: ParsedArgs,
  o: { refetchDigests?: boolean } = {},
): Promise<Chain> {
  const monthly = args.opts.has("monthly");
  if (!isS3Location(spec)) {
    refuseEndpointFor(spec, args);
    return resolveChain(spec, { monthly });
  }
  if (monthly) throw new UsageError("--monthly: not for chains in S3");
  return await openRemoteChain(spec, { endpoint: s3Endpoint(args), refetchDigests: o.refetchDigests });
}

/** What a command that changes a chain holds for its whole run. */
export interface ChainForWrite {
  chain: Chain;
  /** What the chain's last generation was once it was locked (0: a new chain). */
  version: number;
  lock: RunLock;
}

/**
 * Opens the chain `spec` names for a change under its run lock: a local chain as store/writer.ts checks it;
 * a chain in a bucket under its local copy's lock (runs on this host), after finishing what a killed prune
 * left (runs on other hosts are kept apart by the conditional create of manifests).
 */
export async function openChainArgForWrite(
  spec: string,
  args: ParsedArgs,
  o: { command: string; log: (line: string) => void; local?: () => Chain },
): Promise<ChainForWrite> {
  if (!isS3Location(spec)) {
    const chain = o.local?.() ?? resolveChain(spec);
    return { chain, ...openChainForWrite(chain, o) };
  }
  const chain = await openRemoteChain(spec, { endpoint: s3Endpoint(args) });
  const lock = RunLock.acquire(chain.lockPath, `chain ${chain.location}`, o.command);
  try {
    await checkConditionalCreate(chain.bucket, chain.keys);
    await removeAbsorbed(chain, o.log);
    return { chain, version: chain.state.version, lock };
  } catch (err) {
    lock.release();
    throw err;
  }
}
