/**
 * The Dumper of a remote file or device: one SSH connection, the agent started on the remote host (found,
 * cached or uploaded), the old digest streamed to its stdin, and its framed output written to the diff and
 * digest files here. Output that ends early, carries an unknown frame, or whose byte counts differ from the
 * agent's trailer fails the run.
 */
import * as fs from "node:fs";
import process from "node:process";
import type { Dumper } from "../archiver/backup.ts";
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { FRAME, FrameParser, type Trailer } from "../format/agent_frames.ts";
import { DIGEST_SIZE, HEADER_SIZE } from "../format/digest.ts";
import { streamFinished, writeConsumed } from "../io/sink.ts";
import { locateAgent, selfSha256 } from "../ssh/agent_install.ts";
import { SshConnection, type SshOptions } from "../ssh/connect.ts";
import { shellCommand, shellQuote } from "../ssh/quote.ts";
import { describeSource, type SourceSpec } from "./spec.ts";

export type RemoteSpec = Extract<SourceSpec, { kind: "remote" }>;

/** `--lvm-snapshot`: the agent snapshots the LV (classic: `size`; thin LVs need none) and dumps the snapshot. */
export interface SnapshotRequest {
  size: string;
  lvcreatePrefix: string;
}

export async function remoteDumper(
  spec: RemoteSpec,
  ssh: Omit<SshOptions, "host" | "port" | "user">,
  log: (line: string) => void,
  snapshot: SnapshotRequest | null = null,
): Promise<Dumper> {
  selfSha256().catch(() => {}); // hashing the executable overlaps the handshake (awaited by locateAgent)
  const conn = await SshConnection.connect({ ...ssh, host: spec.host, port: spec.port, user: spec.user });
  const description = describeSource(spec);
  try {
    const q = shellQuote(spec.path);
    const probe = await conn.run(
      `if [ -b ${q} ]; then blockdev --getsize64 ${q}; else stat -L -c %s ${q}; fi`,
    );
    if (probe.code !== 0) {
      throw new BlockdiffError(`cannot read remote source ${description}: ${lastLine(probe.stderr)}`);
    }
    const agent = await locateAgent(conn, log);
    return {
      description,
      size: Number(probe.stdout.toString().trim()) || null,
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
            ? ["--lvm-snapshot", snapshot.size, "--lvcreate-prefix", snapshot.lvcreatePrefix]
            : []),
          spec.path,
        ];
        const prefix = process.env.SSH_BLOCKDIFF_PREFIX ?? "";
        const ch = await conn.exec(`${prefix} ${agent.command} ${shellCommand(args)}`.trim());
        let stderr = "";
        ch.stderr.on("data", (d: Buffer) => stderr += d);
        const closed = new Promise<{ code: number | null; signal?: string }>((resolve) =>
          ch.on("close", (code: number | null, signal?: string) => resolve({ code, signal }))
        );
        if (req.oldDigestPath) {
          const old = fs.createReadStream(req.oldDigestPath);
          old.on("error", (err) => ch.destroy(err));
          old.pipe(ch);
        } else ch.end();

        const parser = new FrameParser();
        let diffBytes = 0, digestBytes = 0, trailer: Trailer | null = null, remoteError: string | null = null;
        for await (const chunk of ch as AsyncIterable<Buffer>) {
          for (const f of parser.push(chunk)) {
            if (trailer) throw new IntegrityError(`agent output from ${description}: data after the trailer`);
            if (f.type === FRAME.diff) {
              diffBytes += f.payload.length;
              await writeConsumed(req.diffOut, f.payload);
            } else if (f.type === FRAME.digest) {
              digestBytes += f.payload.length;
              await writeConsumed(req.digestOut, f.payload);
            } else if (f.type === FRAME.progress) req.onProgress(JSON.parse(text(f.payload)).bytes);
            else if (f.type === FRAME.trailer) trailer = JSON.parse(text(f.payload));
            else if (f.type === FRAME.log) log(`${description}: ${text(f.payload)}`);
            else remoteError = text(f.payload);
          }
        }
        const exit = await closed;
        if (remoteError) throw new BlockdiffError(`${description}: ${remoteError}`);
        if (exit.code !== 0 && !trailer) {
          const why = exit.signal
            ? `signal ${exit.signal}`
            : exit.code === null
            ? "connection lost"
            : `exit ${exit.code}`;
          throw new BlockdiffError(
            `agent on ${conn.target} failed (${why}): ${lastLine(stderr) || "no message"}`,
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
        const done = Promise.all([streamFinished(req.diffOut), streamFinished(req.digestOut)]);
        req.diffOut.end();
        req.digestOut.end();
        await done;
        return trailer;
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

function lastLine(s: string): string {
  return s.trim().split("\n").at(-1) ?? "";
}
