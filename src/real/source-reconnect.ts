/**
 * How the source brings a broken link back (source-link.ts): attempts with a
 * doubling delay, bounded in count and in time, each one a whole new set of
 * connections (a new epoch); the destination accepts it for the same session
 * and the engines recover. Kept apart from the link so that the bound is one
 * reading: what the policy allows, and nothing about sockets.
 */
import { sleep } from "./clock.js";
import { messageOf } from "./errors.js";

export interface ReconnectPolicy {
  /** Connection attempts after a failure, at most. */
  attempts: number;
  /** And no attempt starts after this long. */
  totalMs: number;
  connectTimeoutMs: number;
  firstDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RECONNECT: ReconnectPolicy = { attempts: 30, totalMs: 60_000, connectTimeoutMs: 3000, firstDelayMs: 50, maxDelayMs: 2000 };

export interface ReconnectHooks {
  /** Give up now (the link was closed, or the caller no longer wants it). */
  stop(): boolean;
  /** The link is up again (another path brought it back). */
  up(): boolean;
  /** One attempt: resolves once the new connections are open, else throws saying why. */
  attempt(): Promise<void>;
}

/** True once an attempt succeeded (or the link is up), false when the policy ran out or `stop` said so; each failure is logged. */
export async function reconnectWithBackoff(policy: ReconnectPolicy, peer: string, log: (line: string) => void, h: ReconnectHooks): Promise<boolean> {
  const start = Date.now();
  let delay = policy.firstDelayMs;
  for (let attempt = 1; attempt <= policy.attempts; attempt++) {
    await sleep(delay);
    if (h.stop()) return false;
    if (h.up()) return true;
    if (Date.now() - start > policy.totalMs) break;
    try {
      await h.attempt();
      log(`link to ${peer} re-established (attempt ${attempt})`);
      return true;
    } catch (e) {
      log(`reconnect attempt ${attempt}/${policy.attempts} to ${peer} failed: ${messageOf(e)}`);
    }
    delay = Math.min(policy.maxDelayMs, delay * 2);
  }
  return false;
}
