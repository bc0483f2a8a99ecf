/**
 * The command line the original ssh_blockdiff_dump and ssh_lvm_dump share: `[-z|--gzip|--lzop] SSH_ARGS PATH`
 * (the compression option first or not at all, as the originals looked for it), read into `blockdiff dump`'s
 * compression, SSH options and remote SOURCE.
 */
import { UsageError } from "../errors.ts";
import { parseSshArgs, remoteSource, sshOptionArgs } from "./ssh_args.ts";

export interface RemoteDumpLine {
  /** `--gzip` or `--lzop`, or none. */
  compression: string[];
  /** blockdiff's SSH options. */
  ssh: string[];
  /** `[user@]host[:port]:/path`. */
  source: string;
}

/** null: the line asks for help. */
export function parseRemoteDumpLine(
  argv: string[],
  o: { name: string; what: string },
): RemoteDumpLine | null {
  if (argv[0] === "--help" || argv[0] === "-h") return null;
  const compression = argv[0] === "-z" || argv[0] === "--gzip"
    ? ["--gzip"]
    : argv[0] === "--lzop"
    ? ["--lzop"]
    : [];
  const rest = compression.length ? argv.slice(1) : argv;
  if (rest.length !== 2) {
    throw new UsageError(
      `usage: ${o.name} [-z|--gzip|--lzop] SSH_ARGS ${o.what} [5< old.md5] 6> new.md5 > diff ` +
        `(SSH_ARGS one word: "[ssh options] [user@]host")`,
    );
  }
  const ssh = parseSshArgs(rest[0], o.name);
  return { compression, ssh: sshOptionArgs(ssh), source: remoteSource(ssh, rest[1], o.name, o.what) };
}

export const SSH_ARGS_HELP =
  `SSH_ARGS is one word, the original's ssh arguments: "[options] [user@]host", with the options -p PORT,
-i KEY, -l USER, -F CONFIG and -o Port=, User=, IdentityFile=, StrictHostKeyChecking= (yes, ask,
accept-new; no = accept-new: a changed host key is always refused), UserKnownHostsFile=, BatchMode=; any
other option is refused. The connection is blockdiff's own (no ssh program runs); ~/.ssh/config applies.`;
