/**
 * The Dumper of a remote file or device: one SSH connection, the agent started on the remote host (found,
 * cached or uploaded: launch.ts), the old digest streamed to its stdin, its framed output read
 * (agent_output.ts) into the diff and digest files here, the MySQL lock taken (or the snapshot wrapper run)
 * around its lvcreate (quiesce_handshake.ts), and the ending judged (outcome.ts): output that ends early,
 * carries an unknown frame, or disagrees with the agent's trailer fails the run.
 */
import * as fs from "node:fs";
import type { Dumper } from "../archiver/backup.ts";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { streamFinished, writeConsumed } from "../io/sink.ts";
import type { MysqlConnectionOptions } from "../mysql/credentials.ts";
import { mysqlQuiesce } from "../mysql/quiesce.ts";
import type { ReadLockOptions } from "../mysql/read_lock.ts";
import type { SnapshotPlan, SnapshotQuiesce } from "../snapshot/session.ts";
import { describeSource, type SourceSpec } from "../source/spec.ts";
import { SshConnection, type SshOptions } from "../ssh/connect.ts";
import { encodeAgentArgs } from "./agent_args.ts";
import { AgentOutput } from "./agent_output.ts";
import { lastLine, startAgent } from "./launch.ts";
import { checkOutcome } from "./outcome.ts";
import { PUBLISHED_BYTE } from "./frames.ts";
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
  /** `--snapshot-wrapper`, run on this host around the agent's lvcreate (not together with `mysql`). */
  wrapper: SnapshotQuiesce | null;
  /** Change tracking of a thin LV (backup: its snapshot kept as the chain's baseline); false: none (dump). */
  tracking: boolean;
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
  const conn = await SshConnection.connect({
    ...o.ssh,
    host: spec.host,
    port: spec.port,
    user: spec.user,
    log: o.ssh.log ?? log,
  });
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
  const quiesce = mysql?.quiesce ?? snapshot?.wrapper ?? null;
  let settling: ((published: boolean) => Promise<string[]>) | null = null;
  return {
    description,
    recorded: describeSource({ ...spec, user: conn.user }),
    size: null, // the agent's progress frames tell
    async dump(req) {
      const args = encodeAgentArgs({
        path: spec.path,
        blocksize: req.blocksize,
        compression: req.compression,
        level: req.level,
        oldDigestBytes: req.oldDigestPath !== null ? fs.statSync(req.oldDigestPath).size : null,
        snapshot: snapshot && snapshot.plan,
        awaitLock: quiesce !== null,
        tracking: snapshot?.tracking ? req.tracking : null,
      });
      const agent = await startAgent({ conn, args, log, verifyFirst: snapshot !== null });
      const ch = agent.channel;
      agent.verified.catch(() => ch.destroy()); // stop early: nothing of a foreign agent is kept
      // stdin stays open after the old digest: a kept snapshot waits there for the verdict (settle)
      const sendOldDigest = () => {
        if (!req.oldDigestPath) return;
        const old = fs.createReadStream(req.oldDigestPath);
        old.on("error", (err) => ch.destroy(err));
        old.pipe(ch, { end: false });
      };
      const handshake = quiesceHandshake({
        quiesce,
        send: (bytes) => ch.write(bytes),
        sendOldDigest,
        description,
      });
      if (!quiesce) sendOldDigest();
      const output = new AgentOutput(agent.output, description);
      let end;
      try {
        end = await output.toTrailer({
          diff: (payload) => writeConsumed(req.diffOut, payload),
          digest: (payload) => writeConsumed(req.digestOut, payload),
          progress: (bytes, total) => req.onProgress(bytes, total),
          log,
          ready: () => handshake.ready(),
          created: () => handshake.created(),
        });
        if (!end.trailer?.baseline) {
          ch.end();
          if (end.trailer) end.error ??= await output.rest(log); // else the stream has ended: outcome.ts
        }
      } catch (err) {
        ch.destroy(); // the agent sees the connection go: it removes its snapshot and exits
        // a cached agent that is not this executable explains any failure of its output
        throw await agent.verified.then(() => err, (e) => e instanceof IntegrityError ? e : err);
      } finally {
        await handshake.finish();
      }
      const kept = end.trailer?.baseline ?? null;
      if (kept) {
        // the agent waits for the verdict: whatever fails from here on, it hears "not published"
        settling = async (published) => {
          settling = null;
          ch.end(published ? new Uint8Array([PUBLISHED_BYTE]) : undefined);
          const lines: string[] = [];
          const error = await output.rest((line) => lines.push(line));
          const exit = await agent.closed;
          if (error || exit.code !== 0) {
            throw new BlockdiffError(
              `the agent on ${conn.target} could not ${
                published ? "keep" : "remove"
              } ${kept.vg}/${kept.snapshot}: ${
                error || lastLine(agent.stderr()) || `exit ${exit.code ?? exit.signal}`
              }`,
            );
          }
          return lines;
        };
      }
      const trailer = await checkOutcome({
        output: end,
        exit: kept ? { code: 0 } : await agent.closed,
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
    settle: (published) => settling ? settling(published) : Promise.resolve([]),
    close: () => Promise.resolve(conn.close()),
  };
}
