/**
 * The agent's command line, both ends of it: the controller encodes what the agent is to do
 * (`blockdiff agent dump --block-size N ... PATH`) and the agent decodes it. Internal: only this module
 * writes it, so anything else is refused with one line.
 */
import { type Compression, parseCompression } from "../compress/codec.ts";
import { UsageError } from "../errors.ts";

export interface AgentDumpRequest {
  path: string;
  blocksize: number;
  compression: Compression;
  level: number;
  /** The previous digest follows on stdin. */
  oldDigestOnStdin: boolean;
  /** Dump an LVM snapshot of PATH (`size` for a classic one), lvcreate behind `lvcreatePrefix`. */
  snapshot: { size: string; lvcreatePrefix: string } | null;
  /** Wait for the controller's lock before lvcreate (the R frame / go byte handshake). */
  awaitLock: boolean;
}

export function encodeAgentArgs(r: AgentDumpRequest): string[] {
  return [
    "agent",
    "dump",
    "--block-size",
    String(r.blocksize),
    "--compress",
    r.compression,
    "--compress-level",
    String(r.level),
    ...(r.oldDigestOnStdin ? ["--old-digest-on-stdin"] : []),
    ...(r.snapshot
      ? ["--lvm-snapshot", r.snapshot.size, "--lvcreate-prefix", r.snapshot.lvcreatePrefix]
      : []),
    ...(r.awaitLock ? ["--await-lock"] : []),
    "--",
    r.path,
  ];
}

/** `argv` after `blockdiff agent`. */
export function decodeAgentArgs(argv: string[]): AgentDumpRequest {
  const bad = (why: string) => new UsageError(`${why} (internal: started by 'blockdiff backup')`);
  if (argv[0] !== "dump") throw bad("expected 'dump'");
  const values = new Map<string, string>(), flags = new Set<string>();
  let i = 1;
  for (; i < argv.length && argv[i] !== "--"; i++) {
    const a = argv[i];
    if (a === "--old-digest-on-stdin" || a === "--await-lock") flags.add(a);
    else if (
      ["--block-size", "--compress", "--compress-level", "--lvm-snapshot", "--lvcreate-prefix"].includes(a)
    ) {
      if (i + 1 >= argv.length) throw bad(`${a} needs a value`);
      values.set(a, argv[++i]);
    } else throw bad(`unknown argument ${JSON.stringify(a)}`);
  }
  const path = argv[i + 1];
  if (argv[i] !== "--" || path === undefined || argv.length !== i + 2) {
    throw bad("expected -- PATH at the end");
  }
  const num = (name: string, min: number) => {
    const v = values.get(name);
    if (v === undefined || !/^\d+$/.test(v) || Number(v) < min) {
      throw bad(`${name} must be a number >= ${min}`);
    }
    return Number(v);
  };
  const size = values.get("--lvm-snapshot");
  return {
    path,
    blocksize: num("--block-size", 1),
    compression: parseCompression(values.get("--compress") ?? "none"),
    level: num("--compress-level", 0),
    oldDigestOnStdin: flags.has("--old-digest-on-stdin"),
    snapshot: size === undefined ? null : { size, lvcreatePrefix: values.get("--lvcreate-prefix") ?? "" },
    awaitLock: flags.has("--await-lock"),
  };
}
