#!/usr/bin/env -S deno run -A
/** blockdiff: block-level full and incremental backups. See README.md. */
// First: the runtime adapter looks at the inherited descriptors before anything else opens one.
import { programArgs } from "./src/runtime.ts";
import process from "node:process";
import { runAgent } from "./agent/agent.ts";
import { main } from "./src/cli/main.ts";

const argv = programArgs();
// `blockdiff agent ...` is the remote side (started over SSH by a backup), not a user's command.
const code = argv[0] === "agent" ? await runAgent(argv.slice(1)) : await main(argv);
process.exit(code);
