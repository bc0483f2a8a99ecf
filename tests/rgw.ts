/**
 * A real S3 server for the tests: Ceph radosgw on a throw-away single-node cluster (one monitor, one OSD with
 * the in-memory object store, no manager, auth off), everything on 127.0.0.1 on free ports, in a directory of
 * its own, so several can run at once. Also plain curl calls (its own SigV4 signing) to create buckets and to
 * put, get and list objects independently of blockdiff's S3 code.
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import process from "node:process";
import { freePort, tempDir, waitUntil } from "./helpers.ts";

export function rgwAvailable(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0 &&
    ["/usr/bin/radosgw", "/usr/bin/ceph-mon", "/usr/bin/ceph-osd"].every((f) => fs.existsSync(f));
}

export interface Rgw {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  /** env for a blockdiff run: AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION=us-east-1 */
  env: Record<string, string>;
  dir: string;
  /** SIGKILLs radosgw only (mon/osd keep running) and waits until it is gone (zombie state Z counts as gone). */
  killGateway(): Promise<void>;
  /** Starts radosgw again on the same port and waits until it answers HTTP. */
  startGateway(): Promise<void>;
  /** SIGSTOP / SIGCONT radosgw (a hung server). */
  pauseGateway(): void;
  resumeGateway(): void;
  /** Runs radosgw-admin with the cluster's CEPH_CONF, returns stdout (for e.g. creating a second user). */
  admin(args: string[]): string;
  /** PUT /NAME with curl, as this server's user (S3 bucket names: 3 to 63 characters). */
  createBucket(name: string): Promise<void>;
  /** PUT /BUCKET/KEY with curl (to plant or corrupt an object behind blockdiff's back). */
  putObjectRaw(bucket: string, key: string, bytes: Uint8Array): void;
  /** GET /BUCKET/KEY with curl; null when there is no such key. */
  getObjectRaw(bucket: string, key: string): Buffer | null;
  /** All keys under `prefix` (ListObjectsV2 with curl, every page), in S3's order. */
  listKeys(bucket: string, prefix?: string): string[];
  /** SIGKILLs all three daemons, waits until they are gone, removes dir. */
  stop(): Promise<void>;
}

const GATEWAY = "client.rgw.t";
const POOLS = [
  ".rgw.root",
  "default.rgw.control",
  "default.rgw.meta",
  "default.rgw.log",
  "default.rgw.buckets.index",
  "default.rgw.buckets.data",
  "default.rgw.buckets.non-ec",
];

/** Starts a cluster of its own; memstoreBytes bounds what it can hold (in RAM), default 3 GiB. */
export async function startRgw(o: { memstoreBytes?: number } = {}): Promise<Rgw> {
  const dir = tempDir("blockdiff-rgw-");
  for (const d of ["run", "log", "rgw"]) fs.mkdirSync(path.join(dir, d));
  const env = { ...process.env, CEPH_CONF: path.join(dir, "ceph.conf") };
  const monPort = await freePort();
  const rgwPort = await freePort();
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const accessKey = randomBytes(12).toString("hex").toUpperCase();
  const secretKey = randomBytes(24).toString("base64").replace(/[/+=]/g, "");
  const fsid = randomUUID(), osdUuid = randomUUID();
  fs.writeFileSync(
    env.CEPH_CONF,
    cephConf({ dir, fsid, monPort, rgwPort, memstoreBytes: o.memstoreBytes ?? 3 * 2 ** 30 }),
  );

  /** A ceph tool run to its end; its stderr goes to DIR/log/tools.log (the daemons fork and close stdio). */
  const tool = (cmd: string, args: string[]): string => {
    const errFd = fs.openSync(path.join(dir, "log", "tools.log"), "a");
    try {
      return execFileSync(cmd, args, { env, stdio: ["ignore", "pipe", errFd], encoding: "utf8" });
    } finally {
      fs.closeSync(errFd);
    }
  };
  const toolAsync = (cmd: string, args: string[]) =>
    new Promise<number | null>((resolve) => {
      const c = spawn(cmd, args, { env, stdio: "ignore" });
      c.on("error", () => resolve(null));
      c.on("close", resolve);
    });
  const pidOf = (name: string): number | null => {
    try {
      return Number(fs.readFileSync(path.join(dir, "run", `${name}.pid`), "utf8").trim()) || null;
    } catch {
      return null;
    }
  };
  const startGateway = async () => {
    tool("radosgw", ["-n", GATEWAY]);
    await waitUntil(() => answers(endpoint), `radosgw at ${endpoint}`, 30000, 100);
  };
  const killGateway = async () => {
    const pid = pidOf(GATEWAY);
    if (pid === null) return;
    // a stale pid file would make stop() kill whatever process gets that pid next
    fs.rmSync(path.join(dir, "run", `${GATEWAY}.pid`), { force: true });
    await killAndWait([pid]);
  };
  const gatewayPid = () => {
    const pid = pidOf(GATEWAY);
    if (pid === null) throw new Error("radosgw is not running");
    return pid;
  };
  const stop = async () => {
    if (!fs.existsSync(dir)) return;
    const pids = fs.readdirSync(path.join(dir, "run")).filter((f) => f.endsWith(".pid"))
      .map((f) => pidOf(f.slice(0, -4))).filter((p): p is number => p !== null);
    // the cluster is throw-away (memstore): SIGKILL is instant, SIGTERM takes seconds (an OSD whose monitor is
    // gone the longest)
    await killAndWait(pids);
    fs.rmSync(dir, { recursive: true, force: true });
  };

  try {
    tool("ceph-authtool", ["--create-keyring", `${dir}/keyring`, ...[
      "--gen-key",
      "-n",
      "mon.",
      "--cap",
      "mon",
      "allow *",
    ]]);
    tool("ceph-authtool", [
      ...[`${dir}/keyring`, "--gen-key", "-n", "client.admin"],
      ...["--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *"],
    ]);
    tool("monmaptool", [
      "--create",
      "--addv",
      "a",
      `v1:127.0.0.1:${monPort}`,
      "--fsid",
      fsid,
      `${dir}/monmap`,
    ]);
    tool("ceph-mon", ["--mkfs", "-i", "a", "--monmap", `${dir}/monmap`, "--keyring", `${dir}/keyring`]);
    tool("ceph-mon", ["-i", "a"]);
    const id = tool("ceph", ["osd", "new", osdUuid]).trim();
    // memstore's mkfs asserts if the OSD's data directory is missing
    fs.mkdirSync(path.join(dir, `osd.${id}`));
    tool("ceph-osd", ["-i", id, "--mkfs", "--osd-uuid", osdUuid]);
    tool("ceph", ["osd", "crush", "add", `osd.${id}`, "1.0", "root=default"]);
    // RGW would create its pools on first use (a first bucket, put, multipart upload: seconds each); created
    // before the OSD starts they are cheap. Failures don't matter: RGW then creates the pool itself.
    await Promise.all(POOLS.map((p) => toolAsync("ceph", ["osd", "pool", "create", p, "8", "8"])));
    // The OSD has been seen to exit at start ("wrong fsid"): wait until the monitor counts it up, else retry
    let up = false;
    for (let attempt = 1; attempt <= 3 && !up; attempt++) {
      tool("ceph-osd", ["-i", id]);
      up = await waitUntil(
        () => /"num_up_osds":1\b/.test(tool("ceph", ["osd", "stat", "-f", "json"])),
        "the OSD",
        20000,
        200,
      ).then(() => true, () => false);
      if (!up) {
        const pid = pidOf(`osd.${id}`);
        if (pid !== null) await killAndWait([pid]);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    if (!up) throw new Error("the OSD never came up");
    await startGateway();
    tool("radosgw-admin", [
      ...["user", "create", "--uid=bk", "--display-name=bk"],
      `--access-key=${accessKey}`,
      `--secret-key=${secretKey}`,
    ]);
  } catch (err) {
    const logs = fs.readdirSync(path.join(dir, "log")).map((f) => {
      const text = fs.readFileSync(path.join(dir, "log", f), "utf8");
      return `--- ${f}:\n${text.slice(-2000)}`;
    }).join("\n");
    await stop();
    throw new Error(`radosgw did not start: ${(err as Error).message}\n${logs}`);
  }

  const curl = (args: string[], input?: Uint8Array) => {
    // curl (7.88) signs but sends no x-amz-content-sha256, without which radosgw rejects the signature;
    // the body's real hash rather than UNSIGNED-PAYLOAD, so radosgw checks what it got.
    // %{stderr}: the status code goes to stderr, so stdout is the body alone. --max-time: a paused gateway
    // would block this synchronous call, and with it the test process, for good
    const payload = createHash("sha256").update(input ?? new Uint8Array(0)).digest("hex");
    const r = spawnSync("curl", [
      ...["-s", "--aws-sigv4", "aws:amz:us-east-1:s3", "--user", `${accessKey}:${secretKey}`],
      ...["-H", `x-amz-content-sha256: ${payload}`],
      ...["--max-time", "60", "-w", "%{stderr}%{http_code}", ...args],
    ], { input, maxBuffer: 2 ** 31 });
    const status = Number(r.stderr.toString().trim().slice(-3));
    if (r.status !== 0) throw new Error(`curl ${args.join(" ")}: exit ${r.status ?? r.signal}`);
    return { status, body: r.stdout };
  };
  const url = (bucket: string, key = "", query = "") =>
    `${endpoint}/${s3Encode(bucket)}${key ? "/" + key.split("/").map(s3Encode).join("/") : ""}${query}`;
  const expectOk = (what: string, r: { status: number; body: Buffer }) => {
    if (r.status < 200 || r.status > 299) throw new Error(`${what}: HTTP ${r.status} ${r.body.toString()}`);
    return r.body;
  };

  return {
    endpoint,
    accessKey,
    secretKey,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: accessKey,
      AWS_SECRET_ACCESS_KEY: secretKey,
      AWS_REGION: "us-east-1",
    },
    dir,
    killGateway,
    startGateway,
    pauseGateway: () => process.kill(gatewayPid(), "SIGSTOP"),
    resumeGateway: () => process.kill(gatewayPid(), "SIGCONT"),
    admin: (args) => tool("radosgw-admin", args),
    createBucket: (name) => {
      expectOk(`create bucket ${name}`, curl(["-X", "PUT", url(name)]));
      return Promise.resolve();
    },
    putObjectRaw(bucket, key, bytes) {
      expectOk(
        `put ${bucket}/${key}`,
        curl([
          "-X",
          "PUT",
          "-H",
          "Content-Type: application/octet-stream",
          "--data-binary",
          "@-",
          url(bucket, key),
        ], bytes),
      );
    },
    getObjectRaw(bucket, key) {
      const r = curl([url(bucket, key)]);
      return r.status === 404 ? null : expectOk(`get ${bucket}/${key}`, r);
    },
    listKeys(bucket, prefix = "") {
      const keys: string[] = [];
      let token: string | null = null;
      do {
        // SigV4 signs the query as sent: parameters in sorted order, every value fully encoded
        const query: string = (token === null ? "" : `continuation-token=${s3Encode(token)}&`) +
          `list-type=2&prefix=${s3Encode(prefix)}`;
        const xml = expectOk(`list ${bucket}/${prefix}`, curl([url(bucket, "", `?${query}`)])).toString();
        for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) keys.push(xmlText(m[1]));
        token = /<IsTruncated>true<\/IsTruncated>/.test(xml)
          ? xmlText(/<NextContinuationToken>([^<]*)</.exec(xml)![1])
          : null;
      } while (token !== null);
      return keys;
    },
    stop,
  };
}

function cephConf(o: { dir: string; fsid: string; monPort: number; rgwPort: number; memstoreBytes: number }) {
  const { dir, fsid, monPort, rgwPort, memstoreBytes } = o;
  return [
    "[global]",
    `fsid = ${fsid}`,
    `mon host = v1:127.0.0.1:${monPort}`,
    "ms bind msgr2 = false",
    "auth cluster required = none",
    "auth service required = none",
    "auth client required = none",
    "osd pool default size = 1",
    "osd pool default min size = 1",
    "mon allow pool size one = true",
    "mon warn on pool no redundancy = false",
    "osd pool default pg num = 8",
    "osd pool default pgp num = 8",
    "mon max pg per osd = 1000",
    "osd objectstore = memstore",
    `memstore device bytes = ${memstoreBytes}`,
    `osd data = ${dir}/$name`,
    `mon data = ${dir}/$name`,
    `run dir = ${dir}/run`,
    `pid file = ${dir}/run/$name.pid`,
    `log file = ${dir}/log/$name.log`,
    `admin socket = ${dir}/run/$name.asok`,
    `keyring = ${dir}/keyring`,
    "osd crush chooseleaf type = 0",
    // the monitor batches changes for a second by default, which every pool create and crush add would wait for
    "paxos propose interval = 0.05",
    // radosgw-admin notifies every watcher of RGW's control objects and waits for each; a killed gateway's
    // watches stay until the OSD times them out (default 30 s). Clients ping their watches every tick.
    "osd client watch timeout = 5",
    "objecter tick interval = 1",
    "[osd]",
    // else the OSD binds its ports on 0.0.0.0
    "public addr = 127.0.0.1",
    "cluster addr = 127.0.0.1",
    // the OSD's own CRUSH and device-class updates at start went with its "wrong fsid" exits
    "osd crush update on start = false",
    "osd class update on start = false",
    `[${GATEWAY}]`,
    // tcp_nodelay: else each response with a body on a kept-alive connection waits for Nagle + delayed ACK
    `rgw frontends = beast endpoint=127.0.0.1:${rgwPort} tcp_nodelay=1`,
    `rgw data = ${dir}/rgw`,
    // deleted and aborted data would stay in memstore's RAM for hours
    "rgw gc obj min wait = 10",
    "rgw gc processor period = 10",
    "",
  ].join("\n");
}

/** SIGKILLs the processes and waits until each is gone. */
async function killAndWait(pids: number[]): Promise<void> {
  for (const pid of pids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch { /* already gone */ }
  }
  // daemonized, their parent is PID 1, which may reap late; a zombie (state Z) has let go of its ports
  await waitUntil(() => pids.every((pid) => !alive(pid)), `pids ${pids.join(" ")} to exit`, 30000, 20);
}

function alive(pid: number): boolean {
  try {
    // the state follows the parenthesized command name, which may itself hold spaces
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** Whether the server answers an HTTP request (any status). */
function answers(endpoint: string): Promise<boolean> {
  return new Promise((resolve) => {
    // agent false: no kept-alive socket is left behind
    const req = http.get(endpoint, { agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on("end", () => resolve(true));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

/** URI encoding as SigV4 wants it: everything but unreserved characters (encodeURIComponent leaves !'()*). */
function s3Encode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

const XML_ENTITIES: Record<string, string> = { lt: "<", gt: ">", quot: '"', apos: "'", amp: "&" };

function xmlText(s: string): string {
  return s.replace(
    /&(lt|gt|quot|apos|amp|#x[0-9a-fA-F]+|#\d+);/g,
    (_, e: string) =>
      XML_ENTITIES[e] ?? String.fromCodePoint(e[1] === "x" ? parseInt(e.slice(2), 16) : Number(e.slice(1))),
  );
}
