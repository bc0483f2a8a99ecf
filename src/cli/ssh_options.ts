/** The SSH options of the commands that reach a remote host (backup, forget-baseline). */
import { defaultKnownHosts, type SshOptions } from "../ssh/connect.ts";
import { type OptionSpec, type ParsedArgs, stringOpt } from "./args.ts";

export const SSH_OPTIONS: OptionSpec[] = [
  { name: "identity", short: "i", kind: "value" },
  { name: "known-hosts", kind: "value" },
  { name: "accept-new-host-key", kind: "flag" },
];

export const SSH_HELP =
  `  -i, --identity FILE   SSH private key (default: ~/.ssh/id_ed25519, id_ecdsa, id_rsa, and SSH_AUTH_SOCK)
  --known-hosts FILE    default ~/.ssh/known_hosts; a changed host key is always refused
  --accept-new-host-key accept and record the key of a host not in known_hosts`;

export function sshFromArgs(args: ParsedArgs): Omit<SshOptions, "host" | "port" | "user"> {
  return {
    identity: stringOpt(args, "identity") ?? null,
    knownHosts: stringOpt(args, "known-hosts") ?? defaultKnownHosts(),
    acceptNewHostKey: args.opts.has("accept-new-host-key"),
  };
}
