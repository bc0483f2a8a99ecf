/**
 * Whether a remote dump succeeded, and if not, which failure is the one to report: a cached agent that is
 * not this executable explains any other failure; then the agent's own error; then how it ended (connection
 * lost, killed, failed); then output that is cut short or disagrees with its trailer; last, a hash check that
 * never answered.
 */
import { BlockdiffError, IntegrityError } from "../errors.ts";
import { DIGEST_SIZE, HEADER_SIZE } from "../format/digest.ts";
import type { AgentOutputEnd } from "./agent_output.ts";
import type { Trailer } from "./frames.ts";

export interface AgentEnding {
  output: AgentOutputEnd;
  exit: { code: number | null; signal?: string };
  /** The launch's check that the agent is this executable (launch.ts StartedAgent.verified). */
  verified: Promise<void>;
  /** The agent's last line on stderr. */
  lastStderrLine: string;
  description: string;
  /** user@host, for messages about the connection. */
  target: string;
}

/** Returns the trailer of a good run; throws the failure to report otherwise. */
export async function checkOutcome(e: AgentEnding): Promise<Trailer> {
  const { output, exit, description } = e;
  const unverified = await e.verified.then(() => null, (err) => err);
  if (unverified instanceof IntegrityError) throw unverified;
  if (output.error) throw new BlockdiffError(`${description}: ${output.error}`);
  if (exit.code !== 0 && !output.trailer) {
    if (exit.code == null && !exit.signal) {
      throw new BlockdiffError(`ssh ${e.target}: connection lost during the dump of ${description}`);
    }
    const why = exit.signal ? `signal ${exit.signal}` : `exit ${exit.code}`;
    throw new BlockdiffError(`agent on ${e.target} failed (${why}): ${e.lastStderrLine || "no message"}`);
  }
  const t = output.trailer;
  if (!t || output.leftover) {
    throw new IntegrityError(`agent output from ${description} is truncated (no trailer)`);
  }
  if (
    t.diffBytes !== output.diffBytes || t.digestBytes !== output.digestBytes ||
    output.digestBytes !== HEADER_SIZE + DIGEST_SIZE * t.blocks
  ) {
    throw new IntegrityError(
      `agent output from ${description} does not match its trailer (diff ${output.diffBytes}/${t.diffBytes}, ` +
        `digest ${output.digestBytes}/${t.digestBytes} bytes)`,
    );
  }
  if (unverified) throw unverified;
  return t;
}
