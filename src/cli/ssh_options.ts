/** The SSH options of the commands that reach a remote host (backup, forget-baseline). */
import type { SshOptions } from "../ssh/connect.ts";
import { type OptionSpec, type ParsedArgs, stringOpt } from "./args.ts";

export const SSH_OPTIONS: OptionSpec[] = [
  { name: "identity", short: "i", kind: "value" },
  { name: "known-hosts", kind: "value" },
  { name: "accept-new-host-key", kind: "flag" },
  { name: "ssh-config", short: "F", kind: "value" },
];

export const SSH_HELP =
  `  -i, --identity FILE   SSH private key, tried first (then IdentityFile of the ssh config, or
                        ~/.ssh/id_ed25519, id_ecdsa, id_rsa; and the agent at SSH_AUTH_SOCK)
  --known-hosts FILE    instead of UserKnownHostsFile (default ~/.ssh/known_hosts); a changed host key
                        is always refused
  --accept-new-host-key accept and record the key of a host not in known_hosts (as StrictHostKeyChecking
                        accept-new)
  -F, --ssh-config FILE ssh config to read (none: no config; default env BLOCKDIFF_SSH_CONFIG, else
                        ~/.ssh/config): Host aliases, HostName, User, Port, IdentityFile, ProxyJump,
                        UserKnownHostsFile, StrictHostKeyChecking...; user@ and :port of SOURCE and the
                        options above come first`;

export function sshFromArgs(args: ParsedArgs): Omit<SshOptions, "host" | "port" | "user"> {
  return {
    identity: stringOpt(args, "identity") ?? null,
    knownHosts: stringOpt(args, "known-hosts") ?? null,
    acceptNewHostKey: args.opts.has("accept-new-host-key"),
    config: stringOpt(args, "ssh-config") ?? null,
  };
}
