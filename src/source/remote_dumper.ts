/**
 * The Dumper of a remote file or device: one SSH connection, the agent started on the remote host (found,
 * cached or uploaded), the old digest streamed to its stdin, and its framed output written to the diff and
 * digest files here. Output that ends early, carries an unknown frame, or whose byte counts differ from the
 * agent's trailer fails the run.
 */
import { noteGarbage } from "../runtime.ts";
import * as fs from "node:fs";
import type { Dumper } from "../archiver/backup.ts";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { FRAME, FrameParser, GO_BYTE, type Trailer } from "../format/agent_frames.ts";
import { DIGEST_SIZE, HEADER_SIZE } from "../format/digest.ts";
import { streamFinished, writeConsumed } from "../io/sink.ts";
import type { MysqlConnectionOptions } from "../mysql/credentials.ts";
import type { LockOptions } from "../mysql/lock.ts";
import { mysqlSnapshotLock } from "../mysql/snapshot_lock.ts";
import type { SnapshotPlan } from "../snapshot/session.ts";
import { lastLine, startAgent } from "../ssh/agent_launch.ts";
import { selfSha256 } from "../ssh/self_sha.ts";
import { SshConnection, type SshOptions } from "../ssh/connect.ts";
import { describeSource, type SourceSpec } from "./spec.ts";

export type RemoteSpec = Extract<SourceSpec, { kind: "remote" }>;

/**
 * `--lvm-snapshot`: the agent snapshots the LV and dumps the snapshot. `--mysql-lock`: this process holds
 * FLUSH TABLES WITH READ LOCK around the agent's lvcreate, connected to the server through the SSH
 * connection (host/port or socket as seen from the database host), so the password never leaves here.
 */
export interface RemoteSnapshot {
  plan: SnapshotPlan;
  mysql: { conn: MysqlConnectionOptions; lock: LockOptions } | null;
}

export async function remoteDumper(
  spec: RemoteSpec,
  ssh: Omit<SshOptions, "host" | "port" | "user">,
  log: (line: string) => void,
  snapshot: RemoteSnapshot | null = null,
): Promise<Dumper> {
  selfSha256().catch(() => {}); // looked up or hashed while the handshake runs (awaited by startAgent)
  const conn = await SshConnection.connect({ ...ssh, host: spec.host, port: spec.port, user: spec.user });
  const description = describeSource(spec);
  try {
    const my = snapshot?.mysql;
    const mysqlLock = my
      ? mysqlSnapshotLock(
        {
          ...my.conn,
          stream: () =>
            conn.forward(
              my.conn.socketPath
                ? { socket: my.conn.socketPath }
                : { host: my.conn.host!, port: my.conn.port! },
            ),
          via: conn.target,
        },
        my.lock,
        log,
      )
      : null;
    return {
      description,
      size: null, // the agent's progress frames tell
      async dump(req) {
        const args = [
          "agent",
          "dump",
          "--block-size",
          String(req.blocksize),
          "--compress",
          req.compression,
          "--compress-level",
          String(req.level),
          ...(req.oldDigestPath ? ["--old-digest-on-stdin"] : []),
          ...(snapshot
            ? ["--lvm-snapshot", snapshot.plan.size, "--lvcreate-prefix", snapshot.plan.lvcreatePrefix]
            : []),
          ...(mysqlLock ? ["--await-lock"] : []),
          spec.path,
        ];
        const agent = await startAgent(conn, args, log, snapshot !== null);
        const ch = agent.channel;
        const verified = agent.verified;
        verified.catch(() => ch.destroy()); // stop early: nothing of a foreign agent is kept
        const sendOldDigest = () => {
          if (req.oldDigestPath) {
            const old = fs.createReadStream(req.oldDigestPath);
            old.on("error", (err) => ch.destroy(err));
            old.pipe(ch);
          } else ch.end();
        };
        if (!mysqlLock) sendOldDigest();

        const parser = new FrameParser();
        let diffBytes = 0, digestBytes = 0, trailer: Trailer | null = null, remoteError: string | null = null;
        let unlock: ((created: boolean) => Promise<void>) | null = null;
        try {
          for await (const chunk of agent.output) {
            noteGarbage(chunk.length * 4); // ssh2 leaves several buffers per packet (measured: 180 -> 117 MB)
            for (const f of parser.push(chunk)) {
              if (trailer) {
                throw new IntegrityError(`agent output from ${description}: data after the trailer`);
              }
              switch (f.type) {
                case FRAME.diff:
                  diffBytes += f.payload.length;
                  await writeConsumed(req.diffOut, f.payload);
                  f.release?.();
                  break;
                case FRAME.digest:
                  digestBytes += f.payload.length;
                  await writeConsumed(req.digestOut, f.payload);
                  f.release?.();
                  break;
                case FRAME.progress:
                  req.onProgress(...progressOf(f.payload));
                  break;
                case FRAME.trailer:
                  trailer = JSON.parse(text(f.payload));
                  break;
                case FRAME.log:
                  log(`${description}: ${text(f.payload)}`);
                  break;
                case FRAME.error:
                  remoteError = text(f.payload);
                  break;
                case FRAME.ready: // the agent waits for the go byte: lvcreate comes next
                  if (!mysqlLock || unlock) {
                    throw new IntegrityError(`agent on ${description}: unexpected R frame`);
                  }
                  unlock = await mysqlLock.lock();
                  ch.write(new Uint8Array([GO_BYTE]));
                  sendOldDigest();
                  break;
                case FRAME.created: {
                  const u = unlock;
                  unlock = null;
                  await u?.(true);
                }
              }
            }
          }
        } catch (err) {
          ch.destroy(); // the agent sees the connection go: it removes its snapshot and exits
          throw await verified.then(() => err, (e) => e instanceof IntegrityError ? e : err);
        } finally {
          await unlock?.(false);
        }
        const exit = await agent.closed;
        // A foreign agent explains any other failure; a check that could not finish fails the run after them.
        const unverified = await verified.then(() => null, (e) => e);
        if (unverified instanceof IntegrityError) throw unverified;
        if (remoteError) throw new BlockdiffError(`${description}: ${remoteError}`);
        if (exit.code !== 0 && !trailer) {
          if (exit.code == null && !exit.signal) {
            throw new BlockdiffError(`ssh ${conn.target}: connection lost during the dump of ${description}`);
          }
          const why = exit.signal ? `signal ${exit.signal}` : `exit ${exit.code}`;
          throw new BlockdiffError(
            `agent on ${conn.target} failed (${why}): ${lastLine(agent.stderr()) || "no message"}`,
          );
        }
        if (!trailer || parser.leftover) {
          throw new IntegrityError(`agent output from ${description} is truncated (no trailer)`);
        }
        if (
          trailer.diffBytes !== diffBytes || trailer.digestBytes !== digestBytes ||
          digestBytes !== HEADER_SIZE + DIGEST_SIZE * trailer.blocks
        ) {
          throw new IntegrityError(
            `agent output from ${description} does not match its trailer (diff ${diffBytes}/${trailer.diffBytes}, ` +
              `digest ${digestBytes}/${trailer.digestBytes} bytes)`,
          );
        }
        if (unverified) throw unverified;
        const done = Promise.all([streamFinished(req.diffOut), streamFinished(req.digestOut)]);
        req.diffOut.end();
        req.digestOut.end();
        await done;
        return { ...trailer, mysql: mysqlLock?.coordinates() ?? null };
      },
      close: () => Promise.resolve(conn.close()),
    };
  } catch (err) {
    conn.close();
    throw err;
  }
}

function text(b: Uint8Array): string {
  return new TextDecoder().decode(b);
}

/** A progress frame's payload: JSON {bytes, total} (total: the source's size, null where unknown). */
function progressOf(payload: Uint8Array): [number, number | null] {
  const p = JSON.parse(text(payload));
  return [p.bytes, p.total ?? null];
}
