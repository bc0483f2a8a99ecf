/**
 * The agent's command line, both ends of it: the controller encodes what the agent is to do
 * (`blockdiff agent dump --block-size N ... PATH`, `blockdiff agent forget-baseline VG CHAIN_ID`) and the
 * agent decodes it. Internal: only this module writes it, so anything else is refused with one line.
 */
import { type Compression, parseCompression } from "../compress/codec.ts";
import { UsageError } from "../errors.ts";
import type { TrackingRequest } from "../tracking/thin_tracking.ts";

export interface AgentDumpRequest {
  path: string;
  blocksize: number;
  compression: Compression;
  level: number;
  /** The length of the previous digest, which follows on stdin; null: none (a full backup). */
  oldDigestBytes: number | null;
  /** Dump an LVM snapshot of PATH (`size` for a classic one), lvcreate behind `lvcreatePrefix`. */
  snapshot: { size: string; lvcreatePrefix: string } | null;
  /** Wait for the controller's lock before lvcreate (the R frame / go byte handshake). */
  awaitLock: boolean;
  /** Change tracking (a thin LV's snapshot): what the chain's last manifest says, and the options. */
  tracking: TrackingRequest | null;
}

/** Remove a chain's baselines (thin snapshots kept for change tracking) from a volume group. */
export interface AgentForgetRequest {
  vg: string;
  chainId: string;
}

export type AgentRequest =
  | ({ op: "dump" } & AgentDumpRequest)
  | ({ op: "forget-baseline" } & AgentForgetRequest);

export function encodeForgetArgs(r: AgentForgetRequest): string[] {
  return ["agent", "forget-baseline", "--", r.vg, r.chainId];
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
    ...(r.oldDigestBytes !== null ? ["--old-digest-bytes", String(r.oldDigestBytes)] : []),
    ...(r.snapshot
      ? ["--lvm-snapshot", r.snapshot.size, "--lvcreate-prefix", r.snapshot.lvcreatePrefix]
      : []),
    ...(r.awaitLock ? ["--await-lock"] : []),
    ...(r.tracking ? ["--tracking", JSON.stringify(r.tracking)] : []),
    "--",
    r.path,
  ];
}

const VALUE_OPTIONS = [
  "--block-size",
  "--compress",
  "--compress-level",
  "--old-digest-bytes",
  "--lvm-snapshot",
  "--lvcreate-prefix",
  "--tracking",
];

/** `argv` after `blockdiff agent`. */
export function decodeAgentArgs(argv: string[]): AgentRequest {
  const bad = (why: string) => new UsageError(`${why} (internal: started by 'blockdiff backup')`);
  if (argv[0] === "forget-baseline") {
    const [, dashes, vg, chainId] = argv;
    if (dashes !== "--" || argv.length !== 4 || !/^[0-9a-f]{8}$/.test(chainId ?? "") || !vg) {
      throw bad("expected forget-baseline -- VG CHAIN_ID");
    }
    return { op: "forget-baseline", vg, chainId };
  }
  if (argv[0] !== "dump") throw bad("expected 'dump'");
  const values = new Map<string, string>(), flags = new Set<string>();
  let i = 1;
  for (; i < argv.length && argv[i] !== "--"; i++) {
    const a = argv[i];
    if (a === "--await-lock") flags.add(a);
    else if (VALUE_OPTIONS.includes(a)) {
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
  const tracking = values.get("--tracking");
  return {
    op: "dump",
    path,
    blocksize: num("--block-size", 1),
    compression: parseCompression(values.get("--compress") ?? "none"),
    level: num("--compress-level", 0),
    oldDigestBytes: values.has("--old-digest-bytes") ? num("--old-digest-bytes", 4) : null,
    snapshot: size === undefined ? null : { size, lvcreatePrefix: values.get("--lvcreate-prefix") ?? "" },
    awaitLock: flags.has("--await-lock"),
    tracking: tracking === undefined ? null : decodeTracking(tracking, bad),
  };
}

function decodeTracking(text: string, bad: (why: string) => Error): TrackingRequest {
  let t: TrackingRequest;
  try {
    t = JSON.parse(text);
  } catch {
    throw bad("--tracking is not JSON");
  }
  const ok = typeof t === "object" && t !== null && /^[0-9a-f]{8}$/.test(t.chainId) &&
    Number.isSafeInteger(t.generation) && typeof t.verify === "boolean" &&
    Number.isSafeInteger(t.maxPoolUsage) &&
    (t.forceFullScan === null || typeof t.forceFullScan === "string") &&
    (t.previous === null || (typeof t.previous === "object" && typeof t.previous.snapshot === "string" &&
      Number.isSafeInteger(t.previous.thinId) && Number.isSafeInteger(t.previous.size)));
  if (!ok) throw bad("--tracking is not a change tracking request");
  return t;
}
