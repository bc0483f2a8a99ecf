import { formatBytes } from "../display/units.ts";
import { UsageError } from "../errors.ts";
import { connectBucket } from "../s3/connect.ts";
import { copyChain } from "../s3/copy.ts";
import { isS3Location, parseS3Location } from "../s3/location.ts";
import { resolveChain } from "../store/monthly.ts";
import { expectPositionals } from "./args.ts";
import { type Command, HELP_OPTION, JSON_OPTION } from "./command.ts";
import { note, printJson } from "./output.ts";
import { S3_ENDPOINT_OPTION, S3_HELP, s3Endpoint } from "./chain_location.ts";

const USAGE = "blockdiff copy NAME s3://BUCKET/[PREFIX/]NAME [--s3-endpoint URL] [--json]";

export const copyCommand: Command = {
  name: "copy",
  summary: "copy the new generations of local chain NAME to a chain in S3",
  help: `usage: ${USAGE}

Uploads the generations of local chain NAME that the S3 chain does not have yet, oldest first: a local
chain for fast restores, its copy in S3 offsite. Each generation is published by its manifest, created only
if absent, after its digest and diff are uploaded and checked against the local manifest's SHA-256; of two
runs copying the same generation exactly one publishes it (the other exits 4). The local chain is only read
(backups and prunes may run meanwhile). A failed or interrupted copy leaves nothing published; what it
uploaded is removed by a later copy. The S3 chain must be a copy of this chain (its newest generation's
digest is ours). A bucket with versioning enabled whose server ignores conditional creates there (Ceph
radosgw 16) is refused (exit 1). 'blockdiff restore', 'verify', 'list' and 'status' read it as s3://...

options:
${S3_HELP}
  --json                print a JSON summary on stdout
  -h, --help            this help

examples:
  blockdiff copy /backup/db s3://offsite/hosts/db1/db
  AWS_PROFILE=offsite blockdiff copy /backup/db s3://backups/db --s3-endpoint https://rgw.example.net`,
  options: [HELP_OPTION, JSON_OPTION, S3_ENDPOINT_OPTION],
  async run(args) {
    const [name, dest] = expectPositionals(args, 2, 2, USAGE);
    if (isS3Location(name)) throw new UsageError(`copy: ${name}: the source must be a local chain`);
    if (!isS3Location(dest)) throw new UsageError(`copy: ${dest}: expected s3://BUCKET/[PREFIX/]NAME`);
    const loc = parseS3Location(dest);
    const chain = resolveChain(name);
    chain.requireVersion();
    const bucket = await connectBucket({ bucket: loc.bucket, endpoint: s3Endpoint(args) });
    const s = await copyChain({ chain, dest: loc, bucket, log: note });
    if (args.opts.has("json")) printJson({ ok: true, ...s });
    note(
      s.copied.length
        ? `copied ${s.copied.length} generation(s) (${
          formatBytes(s.bytes)
        }) of ${chain.location} to ${dest}: ` +
          `it is at generation ${s.version}`
        : `${dest} is up to date (generation ${s.version})`,
    );
    return 0;
  },
};
