/**
 * The start of every command that changes a chain: its lock for the whole run, an interrupted commit
 * finished or undone, `.ver` checked against the generations present, and the leftovers of killed runs
 * removed. Returns the generation `.ver` names, which the command's commit checks again.
 */
import * as fs from "node:fs";
import type { Chain } from "./chain.ts";
import { leftoversBeforeWrite, scanChain } from "./chain_state.ts";
import { viewOf } from "./generations.ts";
import { recoverCommit } from "./journal.ts";
import { RunLock } from "./run_lock.ts";

export interface ChainWriter {
  /** What NAME.ver said once the chain was locked and checked (0: a new chain). */
  version: number;
  lock: RunLock;
}

export function openChainForWrite(
  chain: Chain,
  o: { command: string; log: (line: string) => void },
): ChainWriter {
  const lock = RunLock.acquire(chain.lockPath, `chain ${chain.path("")}`, o.command);
  try {
    const recovered = recoverCommit(chain);
    if (recovered) o.log(`${chain.name}: ${recovered}`);
    const state = scanChain(chain);
    for (const p of leftoversBeforeWrite(chain, state, viewOf(chain, state.version ?? 0))) {
      fs.rmSync(p, { force: true });
      o.log(`removed a leftover of an incomplete run: ${p}`);
    }
    return { version: state.version ?? 0, lock };
  } catch (err) {
    lock.release();
    throw err;
  }
}
