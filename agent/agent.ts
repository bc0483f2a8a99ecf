/**
 * `blockdiff agent ...`: the remote side of a backup, started over SSH by the controller (src/remote/launch.ts)
 * on the host that holds the source. The entry only: the request is decoded (src/remote/agent_args.ts) and
 * carried out: a dump by src/remote/agent_dump.ts, which writes framed output on stdout; forgetting a
 * chain's baselines (blockdiff forget-baseline) by src/tracking/.
 */
import process from "node:process";
import { installSignalHandlers, runCleanups } from "../src/cleanup.ts";
import { BlockdiffError, EXIT } from "../src/errors.ts";
import { decodeAgentArgs } from "../src/remote/agent_args.ts";
import { runAgentDump } from "../src/remote/agent_dump.ts";
import { forgetBaselines } from "../src/tracking/thin_tracking.ts";

/** `argv`: what follows `blockdiff agent`. Returns the exit code. */
export async function runAgent(argv: string[]): Promise<number> {
  let request;
  try {
    request = decodeAgentArgs(argv);
  } catch (err) {
    process.stderr.write(`blockdiff agent: ${(err as Error).message}\n`);
    return err instanceof BlockdiffError ? err.exitCode : EXIT.failure;
  }
  // The connection may drop (SIGHUP) or the controller die (EPIPE, SIGPIPE): the snapshot goes on every path.
  installSignalHandlers();
  process.on("SIGPIPE", () => {
    runCleanups("SIGPIPE");
    process.exit(128 + 13);
  });
  try {
    if (request.op === "forget-baseline") {
      for (const name of forgetBaselines(request.vg, request.chainId)) process.stdout.write(`${name}\n`);
      return EXIT.ok;
    }
    return await runAgentDump(request);
  } catch (err) {
    process.stderr.write(`blockdiff agent: ${(err as Error).message}\n`);
    return err instanceof BlockdiffError ? err.exitCode : EXIT.failure;
  } finally {
    runCleanups();
  }
}
