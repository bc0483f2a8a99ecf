#!/usr/bin/env -S deno run -A
/** blockdiff: block-level full and incremental backups. See README.md. */
// First: the runtime adapter looks at the inherited descriptors before anything else opens one.
import { invokedName, programArgs } from "./src/runtime.ts";
import process from "node:process";
import { runAgent } from "./agent/agent.ts";
import { main } from "./src/cli/main.ts";
import { originalTool } from "./src/original/names.ts";
import { runOriginal } from "./src/original/dispatch.ts";

const argv = programArgs();
// Invoked as one of the original tools (a link named blockdiff_dump, ssh_lvm_dump...): that tool's command
// line. A hard link runs itself again under its own name for the hidden `snapshot-gate`, which stays ours.
const original = argv[0] === "snapshot-gate" ? null : originalTool(invokedName());
// `blockdiff agent ...` is the remote side (started over SSH by a backup), not a user's command.
const code = original !== null
  ? await runOriginal(original, argv)
  : argv[0] === "agent"
  ? await runAgent(argv.slice(1))
  : await main(argv);
process.exit(code);
