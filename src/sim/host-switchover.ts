/**
 * The switchover's legs on the hosts (issue 10 part 4): the real downtime is
 * the guest's own — the source guest's last vCPU park to the destination
 * guest's first vCPU step (src/real/source-report.ts) — and on that path the
 * real back end spends more than the PAUSE and RESUME round trips of a
 * quiet one-vCPU guest (`pause_us`, `resume_us`) that the profile charged:
 * 1.2–2.8 ms in post-copy over loopback where those gave ~0.1 ms.
 *
 * Optional keys of the host profile, µs, measured by `ppsim calibrate`
 * (src/real/calibrate-switchover.ts):
 * - `park_us`: the source agent's PAUSE → its guest's last vCPU park. The
 *   vCPUs run on until they see it (they are at nice 19; the guest raises
 *   them as the PAUSE arrives): the guest runs and dirties pages meanwhile,
 *   and the guest's downtime starts only after it;
 * - `pause_reply_us`: the last park → the PAUSE reply with the vCPU state at
 *   the source's engine;
 * - `switchover_hop_us`: the switchover frame's way from the source engine's
 *   send to the destination's engine beyond the link's latency: it goes on
 *   the bulk connection through both native threads and the receiver's
 *   notice to the destination's event loop;
 * - `first_step_us`: the destination engine's RESUME → its guest's first
 *   vCPU step (the vCPU threads start), where the downtime ends.
 *
 * How the simulator charges them: with `park_us` the source guest parks that
 * long after the engine decided to pause, and its engine hears of the pause
 * `pause_reply_us` after the park (instead of `pause_us` after the decision);
 * the switchover message holds the link `switchover_hop_us` longer (what
 * follows it waits behind it), and the destination's guest runs
 * `first_step_us` after its engine took the switchover (instead of the
 * engine taking it `resume_us` late); the engine hears its guest runs then. A report's `downtime_ms` is then
 * the guest's, as the real report's is: from the park, not the decision.
 */
import type { HostProfile } from "./host.js";
import { optionalCostError } from "./host-keys.js";

export const SWITCHOVER_KEYS = ["park_us", "pause_reply_us", "switchover_hop_us", "first_step_us"] as const;

export interface HostSwitchover {
  park_us?: number;
  pause_reply_us?: number;
  switchover_hop_us?: number;
  first_step_us?: number;
}

/** Checks the optional switchover keys (`o` is a parsed profile); the first wrong one's sentence, or null. */
export function switchoverKeyError(o: Record<string, unknown>, max: number): string | null {
  return optionalCostError(o, SWITCHOVER_KEYS, max);
}

/** From the engine's decision to pause: when the source guest parks, and when the engine hears of the pause, µs after the decision. */
export function pauseLegsUs(h: HostProfile | null): { parkUs: number; pausedUs: number } {
  if (h === null) return { parkUs: 0, pausedUs: 0 };
  if (h.park_us === undefined) return { parkUs: 0, pausedUs: h.pause_us };
  return { parkUs: h.park_us, pausedUs: h.park_us + (h.pause_reply_us ?? 0) };
}

/**
 * How long the switchover message holds its direction of the link beyond
 * its per-message work, µs: its hop. Held, not added to its latency, so that
 * what the source sends after it (post-copy's pages) arrives after it, as
 * on the real connection (a later message must not overtake it: the
 * switchover's stale list would drop a page sent after it).
 */
export function switchoverHopUs(h: HostProfile): number {
  return h.switchover_hop_us ?? 0;
}

/** What the switchover message's receiver adds to its latency before its engine takes it, µs: without `first_step_us`, the RESUME of old profiles. */
export function switchoverExtraUs(h: HostProfile): number {
  return h.first_step_us === undefined ? h.resume_us : 0;
}

/** From the destination engine's RESUME to its guest's first step, µs (0: at once; without the key `resume_us` was charged on the way in). */
export function firstStepUs(h: HostProfile | null): number {
  return h?.first_step_us ?? 0;
}
