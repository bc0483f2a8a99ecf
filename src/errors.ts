/** Exit codes, documented in README.md ("Exit codes"). */
export const EXIT = {
  ok: 0,
  /** The run failed: unreadable source, I/O error, full disk, remote failure... */
  failure: 1,
  /** Bad command line. */
  usage: 2,
  /** The chain or a file of it is corrupt, or data does not match its digest. */
  integrity: 3,
  /** Another run holds the chain's lock (or the `--lock` file). */
  locked: 4,
  /** `status`: a chain is stale, its last run failed or died, or its last verify is too old. */
  unhealthy: 5,
  /** Interrupted by SIGHUP (128+1) / SIGINT (128+2) / SIGTERM (128+15). */
  sighup: 129,
  sigint: 130,
  sigterm: 143,
} as const;

export type ExitCode = typeof EXIT[keyof typeof EXIT];

/** An expected failure: its message is the one line printed on stderr. */
export class BlockdiffError extends Error {
  constructor(message: string, readonly exitCode: ExitCode = EXIT.failure) {
    super(message);
    this.name = "BlockdiffError";
  }
}

export class UsageError extends BlockdiffError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

export class IntegrityError extends BlockdiffError {
  constructor(message: string) {
    super(message, EXIT.integrity);
  }
}

/** Turns a node:fs error into one readable line: "reading /x: no such file or directory". */
export function describeIoError(action: string, err: unknown): BlockdiffError {
  if (err instanceof BlockdiffError) return err;
  const e = err as NodeJS.ErrnoException;
  const reason = IO_REASONS[e?.code ?? ""] ?? (e?.message ?? String(err));
  return new BlockdiffError(`${action}: ${reason}`);
}

const IO_REASONS: Record<string, string> = {
  ENOENT: "no such file or directory",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOSPC: "no space left on device",
  EDQUOT: "disk quota exceeded",
  EROFS: "read-only file system",
  EISDIR: "is a directory",
  ENOTDIR: "not a directory",
  EIO: "input/output error",
  EBADF: "bad file descriptor (not open?)",
  EEXIST: "already exists",
  EPIPE: "broken pipe",
  EFBIG: "file too large",
};
