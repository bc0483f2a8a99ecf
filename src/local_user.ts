/** The local user's name and home, as ssh and the MySQL client take them. */
import { execFileSync } from "node:child_process";
import * as os from "node:os";

let cached: string | null = null;

/**
 * The name of this process's uid, as ssh takes it (getpwuid), whatever $USER says: Bun's os.userInfo()
 * reads $USER and says "unknown" without it (cron), so the system's `id -un` answers first (it also knows
 * the users of LDAP and the like).
 */
export function localUserName(): string {
  if (cached !== null) return cached;
  try {
    cached = execFileSync("id", ["-un"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch { /* no `id`: the runtime's answer */ }
  if (!cached) cached = os.userInfo().username;
  return cached;
}

/** The home directory for `~` and `%d` (env HOME, as the rest of blockdiff uses it). */
export function homeDir(): string {
  return os.homedir();
}
