/**
 * `ssh_lvm_dump [-z|--gzip|--lzop] SSH_ARGS LV [5< old.md5] 6> new.md5 > diff`, the original's remote LVM
 * dump: `blockdiff dump --lvm-snapshot` of the remote LV, with the original's defaults: 1 MiB blocks
 * unless env BLOCKSIZE is set (an old digest's block size wins either way), a snapshot of env SNAPSHOT_SIZE
 * or 10G. Env LVCREATE_PREFIX keeps the original's meaning: a command run on this host around the snapshot's
 * creation (`mysqllock --host=db1 --user=backup --`), which is `dump --snapshot-wrapper`; it is therefore
 * not also put in front of lvcreate, which is what LVCREATE_PREFIX means to `blockdiff backup` and `dump`.
 */
import process from "node:process";
import { BlockdiffError, UsageError } from "../errors.ts";
import { parseWrapperWords } from "../snapshot/wrapper_quiesce.ts";
import { parseRemoteDumpLine, SSH_ARGS_HELP } from "./remote_dump.ts";
import { type Outcome, runTranslated } from "./translate.ts";

const NAME = "ssh_lvm_dump";
/** The original's block size. */
const LVM_DUMP_BLOCKSIZE = "1048576";

export const SSH_LVM_DUMP_HELP =
  `usage: ssh_lvm_dump [-z|--gzip|--lzop] SSH_ARGS LV [5< old.md5] 6> new.md5 > diff

blockdiff under the original ssh_lvm_dump's name: runs 'blockdiff dump --lvm-snapshot=SIZE [-z|--lzop]
[SSH options] [user@]host[:port]:LV' (see blockdiff dump --help): after sync, a snapshot of LV (an
absolute path, /dev/VG/LV) with a name of its own is created on the remote host, dumped and removed on
every path.

environment:
  BLOCKSIZE         block size without an old digest (default 1048576, as the original's)
  SNAPSHOT_SIZE     size of a classic snapshot (default 10G; a thin LV's snapshot takes none)
  LVCREATE_PREFIX   a command run on this host around the snapshot's creation, as in the original:
                    LVCREATE_PREFIX="mysqllock --host=db1 --user=backup --" holds FLUSH TABLES WITH
                    READ LOCK while the snapshot is made (dump --snapshot-wrapper; plain words only)
  SSH_BLOCKDIFF_PREFIX  words in front of the remote agent (e.g. "nice -n 19")

${SSH_ARGS_HELP}`;

export function translateSshLvmDump(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): Outcome {
  const line = parseRemoteDumpLine(argv, { name: NAME, what: "LV" });
  if (line === null) return { print: SSH_LVM_DUMP_HELP, code: 0 };
  const prefix = (env.LVCREATE_PREFIX ?? "").trim();
  if (prefix !== "") {
    try {
      parseWrapperWords(prefix);
    } catch (err) {
      if (!(err instanceof BlockdiffError)) throw err;
      throw new UsageError(`${NAME}: LVCREATE_PREFIX: ${err.message}`);
    }
  }
  return {
    args: [
      "dump",
      ...line.compression,
      ...line.ssh,
      `--lvm-snapshot=${env.SNAPSHOT_SIZE || "10G"}`,
      ...(prefix !== "" ? ["--snapshot-wrapper", prefix] : []),
      line.source,
    ],
    env: { ...(env.BLOCKSIZE ? {} : { BLOCKSIZE: LVM_DUMP_BLOCKSIZE }), LVCREATE_PREFIX: null },
  };
}

export function runSshLvmDump(argv: string[]): Promise<number> {
  return runTranslated(NAME, argv, (a) => translateSshLvmDump(a));
}
