/**
 * `ssh_blockdiff_dump [-z|--gzip|--lzop] SSH_ARGS FILE [5< old.md5] 6> new.md5 > diff`, the original's
 * remote dump: `blockdiff dump` of the remote SOURCE, read by blockdiff's agent on that host. BLOCKSIZE
 * and SSH_BLOCKDIFF_PREFIX are read by `dump` as the original passed them on; TMPDIR is not used (no
 * temporary files: the digests travel over the connection).
 */
import { parseRemoteDumpLine, SSH_ARGS_HELP } from "./remote_dump.ts";
import { type Outcome, runTranslated } from "./translate.ts";

const NAME = "ssh_blockdiff_dump";

export const SSH_BLOCKDIFF_DUMP_HELP =
  `usage: ssh_blockdiff_dump [-z|--gzip|--lzop] SSH_ARGS FILE [5< old.md5] 6> new.md5 > diff

blockdiff under the original ssh_blockdiff_dump's name: runs 'blockdiff dump [-z|--lzop] [SSH options]
[user@]host[:port]:FILE' (see blockdiff dump --help). FILE is an absolute path on the remote host, which
needs nothing installed. Env BLOCKSIZE (default 16384; an old digest's wins) and SSH_BLOCKDIFF_PREFIX
(words in front of the remote agent, e.g. "nice -n 19") apply.

${SSH_ARGS_HELP}`;

export function translateSshBlockdiffDump(argv: string[]): Outcome {
  const line = parseRemoteDumpLine(argv, { name: NAME, what: "FILE" });
  if (line === null) return { print: SSH_BLOCKDIFF_DUMP_HELP, code: 0 };
  return { args: ["dump", ...line.compression, ...line.ssh, line.source] };
}

export function runSshBlockdiffDump(argv: string[]): Promise<number> {
  return runTranslated(NAME, argv, translateSshBlockdiffDump);
}
