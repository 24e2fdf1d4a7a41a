/**
 * What a demand fault over the native fault lane costs beyond the lane's
 * own figure (issue 10 part 4, docs/host-profile.md "Fault p50: why the
 * simulator was 2–10× the real one").
 *
 * `fault_lane_us` (host.ts) is the lane's round trip between two native
 * ends joined by a socketpair: reader thread → source lane thread → the
 * install that wakes the vCPU, its kernel hops included. The simulator
 * added the link's latency both ways on top — but the benchmarks give the
 * simulator a loopback or veth link whose latency is half a Node-to-Node
 * ping-pong (bench/loopback.ts, bench/netns.ts), and that is mostly the
 * two processes' event loops waking (133–181 µs round trip under load,
 * where a native hop is a few µs). The lane's messages never pass an event
 * loop: the real lane faults' fastest tenth came in 32–64 µs, below the
 * simulated round trip alone. So the optional keys here, µs:
 * - `loop_hop_us`: the part of the link's one-way latency that is the
 *   receiving agent's event loop waking. The fault lane's request and
 *   reply do not pay it (at most the link's latency is taken off); every
 *   other message does, as before. The bench sets it to the share of its
 *   link's latency its ping-pong measured on a kernel-only path (loopback:
 *   all of it).
 * With the CPU keys (host-cpu.ts), a lane fault's reply also comes
 * `urgent_extra_us` later: calibrate's measure of how much longer a
 * request/reply round trip between two processes takes while the page
 * stream runs (the two cores busy with the stream's threads), which the
 * lane's threads wait for as the agents' sockets do. Without `loop_hop_us`
 * a lane fault costs what it cost before (the lane's figure alone).
 *
 * With `fault_lane_us` the lane is also a mechanism, not only a cost: the
 * real lane's source thread answers every request it gets, also for a page
 * whose copy is already on its way in a background message, which the
 * engine would leave to that copy; the simulator's driver does the same
 * (engine-effects.ts laneServe).
 */
import type { HostCpu } from "./host-cpu.js";
import { optionalCostError } from "./host-keys.js";

export interface HostLane {
  loop_hop_us?: number;
}

export const LANE_KEYS = ["loop_hop_us"] as const;

/** Checks the optional lane keys (`o` is a parsed profile); the first wrong one's sentence, or null. */
export function laneKeyError(o: Record<string, unknown>, max: number): string | null {
  return optionalCostError(o, LANE_KEYS, max);
}

/**
 * The lane's request and reply, as the link delivers them: what each adds
 * to the link's latency, µs (negative: it takes the event loop's hop off,
 * never more than `linkLatencyUs`, so nothing arrives before its last byte
 * left). `laneUs`: the profile's `fault_lane_us`.
 */
export function laneExtraUs(h: HostLane & HostCpu, laneUs: number, type: "pageRequest" | "pages", linkLatencyUs: number): number {
  if (h.loop_hop_us === undefined) return type === "pageRequest" ? laneUs : 0;
  const hop = Math.min(h.loop_hop_us, Math.max(0, linkLatencyUs));
  // The stream's contention for the cores, as calibrate measured it for a round trip; only with the CPU keys.
  const busy = h.cores_available === undefined ? 0 : (h.urgent_extra_us ?? 0);
  return type === "pageRequest" ? laneUs + busy - hop : -hop;
}
