/**
 * `blockdiff snapshot-gate SOCKET` (internal, not in the usage list): what a `--snapshot-wrapper` runs.
 * It tells the run that the wrapper holds what it holds (the read lock), waits until the snapshot was created
 * and exits 0, or 1 when it was not or the run went away (snapshot/wrapper_quiesce.ts).
 */
import * as net from "node:net";
import { BlockdiffError, EXIT } from "../errors.ts";
import { GATE } from "../snapshot/wrapper_quiesce.ts";
import { expectPositionals } from "./args.ts";
import { type Command, HELP_OPTION } from "./command.ts";

export const snapshotGateCommand: Command = {
  name: "snapshot-gate",
  summary: "internal: the command --snapshot-wrapper runs; returns once the snapshot was created",
  help: `usage: blockdiff snapshot-gate SOCKET   (internal)

Run by the command of backup's and dump's --snapshot-wrapper: connects to the run's SOCKET, says that the
wrapper holds what it holds, and waits. Exits 0 once the snapshot was created, 1 when it was not or the run
went away.`,
  options: [HELP_OPTION],
  async run(args) {
    const [socketPath] = expectPositionals(args, 1, 1, "blockdiff snapshot-gate SOCKET");
    const verdict = await new Promise<string | null>((resolve, reject) => {
      const sock = net.connect(socketPath);
      let heard = "", connected = false;
      sock.setEncoding("utf8");
      sock.on("connect", () => {
        connected = true;
        sock.write(`${GATE.held}\n`);
      });
      sock.on("data", (d: string) => {
        heard += d;
        if (heard.includes("\n")) {
          resolve(heard.slice(0, heard.indexOf("\n")));
          sock.destroy();
        }
      });
      sock.on("error", (err) => {
        if (!connected) {
          reject(new BlockdiffError(`snapshot-gate: cannot reach the run at ${socketPath}: ${err.message}`));
        } else resolve(null);
      });
      sock.on("close", () => resolve(null));
    });
    if (verdict === GATE.created) return EXIT.ok;
    throw new BlockdiffError(
      verdict === GATE.failed
        ? "snapshot-gate: the snapshot was not created"
        : "snapshot-gate: the run ended before the snapshot was created",
    );
  },
};
