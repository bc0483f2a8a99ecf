#!/usr/bin/env -S deno run -A
/** blockdiff: block-level full and incremental backups. See README.md. */
// First: the runtime adapter looks at the inherited descriptors before anything else opens one.
import { programArgs } from "./src/runtime.ts";
import process from "node:process";
import { main } from "./src/cli/main.ts";
import { stdoutFlushed } from "./src/cli/output.ts";

const code = await main(programArgs());
// Let pending stdout writes drain, then exit with the command's status.
process.exitCode = code;
await stdoutFlushed();
process.exit(code);
