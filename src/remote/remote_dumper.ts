/**
 * The Dumper of a remote file or device: one SSH connection, the agent started on the remote host (found,
 * cached or uploaded: launch.ts), the old digest streamed to its stdin, its framed output read
 * (agent_output.ts) into the diff and digest files here, the MySQL lock taken around its lvcreate
 * (quiesce_handshake.ts), and the ending judged (outcome.ts): output that ends early, carries an unknown
 * frame, or disagrees with the agent's trailer fails the run.
 */
import * as fs from "node:fs";
import type { Dumper } from "../archiver/backup.ts";
import { IntegrityError } from "../errors.ts";
import { streamFinished, writeConsumed } from "../io/sink.ts";
import type { MysqlConnectionOptions } from "../mysql/credentials.ts";
import { mysqlQuiesce } from "../mysql/quiesce.ts";
import type { ReadLockOptions } from "../mysql/read_lock.ts";
import type { SnapshotPlan } from "../snapshot/session.ts";
import { describeSource, type SourceSpec } from "../source/spec.ts";
import { SshConnection, type SshOptions } from "../ssh/connect.ts";
import { encodeAgentArgs } from "./agent_args.ts";
import { readAgentOutput } from "./agent_output.ts";
import { lastLine, startAgent } from "./launch.ts";
import { checkOutcome } from "./outcome.ts";
import { quiesceHandshake } from "./quiesce_handshake.ts";
import { selfSha256 } from "./self_sha.ts";

export type RemoteSpec = Extract<SourceSpec, { kind: "remote" }>;

/**
 * `--lvm-snapshot`: the agent snapshots the LV and dumps the snapshot. `--mysql-lock`: this process holds
 * FLUSH TABLES WITH READ LOCK around the agent's lvcreate, connected to the server through the SSH
 * connection (host/port or socket as seen from the database host), so the password never leaves here.
 */
export interface RemoteSnapshot {
  plan: SnapshotPlan;
  mysql: { conn: MysqlConnectionOptions; lock: ReadLockOptions } | null;
}

export interface RemoteDumperOptions {
  spec: RemoteSpec;
  ssh: Omit<SshOptions, "host" | "port" | "user">;
  log: (line: string) => void;
  snapshot: RemoteSnapshot | null;
}

export async function remoteDumper(o: RemoteDumperOptions): Promise<Dumper> {
  const { spec, log, snapshot } = o;
  selfSha256().catch(() => {}); // looked up or hashed while the handshake runs (awaited by startAgent)
  const conn = await SshConnection.connect({ ...o.ssh, host: spec.host, port: spec.port, user: spec.user });
  const description = describeSource(spec);
  const my = snapshot?.mysql;
  const mysql = my
    ? mysqlQuiesce({
      conn: {
        ...my.conn,
        stream: () =>
          conn.forward(
            my.conn.socketPath
              ? { socket: my.conn.socketPath }
              : { host: my.conn.host!, port: my.conn.port! },
          ),
        via: conn.target,
      },
      lock: my.lock,
      log,
    })
    : null;
  return {
    description,
    size: null, // the agent's progress frames tell
    async dump(req) {
      const args = encodeAgentArgs({
        path: spec.path,
        blocksize: req.blocksize,
        compression: req.compression,
        level: req.level,
        oldDigestOnStdin: req.oldDigestPath !== null,
        snapshot: snapshot && snapshot.plan,
        awaitLock: mysql !== null,
      });
      const agent = await startAgent({ conn, args, log, verifyFirst: snapshot !== null });
      const ch = agent.channel;
      agent.verified.catch(() => ch.destroy()); // stop early: nothing of a foreign agent is kept
      const sendOldDigest = () => {
        if (req.oldDigestPath) {
          const old = fs.createReadStream(req.oldDigestPath);
          old.on("error", (err) => ch.destroy(err));
          old.pipe(ch);
        } else ch.end();
      };
      const handshake = quiesceHandshake({
        mysql,
        send: (bytes) => ch.write(bytes),
        sendOldDigest,
        description,
      });
      if (!mysql) sendOldDigest();
      let output;
      try {
        output = await readAgentOutput(agent.output, {
          diff: (payload) => writeConsumed(req.diffOut, payload),
          digest: (payload) => writeConsumed(req.digestOut, payload),
          progress: (bytes, total) => req.onProgress(bytes, total),
          log,
          ready: () => handshake.ready(),
          created: () => handshake.created(),
        }, description);
      } catch (err) {
        ch.destroy(); // the agent sees the connection go: it removes its snapshot and exits
        // a cached agent that is not this executable explains any failure of its output
        throw await agent.verified.then(() => err, (e) => e instanceof IntegrityError ? e : err);
      } finally {
        await handshake.finish();
      }
      const trailer = await checkOutcome({
        output,
        exit: await agent.closed,
        verified: agent.verified,
        lastStderrLine: lastLine(agent.stderr()),
        description,
        target: conn.target,
      });
      const done = Promise.all([streamFinished(req.diffOut), streamFinished(req.digestOut)]);
      req.diffOut.end();
      req.digestOut.end();
      await done;
      return { ...trailer, mysql: mysql?.coordinates() ?? null };
    },
    close: () => Promise.resolve(conn.close()),
  };
}
