/**
 * Opt-in (PPSIM_LANE_RR=N, 1 … 99): the fault lane's native threads in
 * SCHED_RR (issue 9: demand-fault p99 ≤ 1 ms while the background runs at
 * full speed).
 *
 * Why: since the fault lane (fault-lane.ts) a demand fault crosses no event
 * loop, only three native threads — the destination's fault reader (polls
 * the uffd, writes the request), the source's lane server (reads the page,
 * writes the reply) and the destination's lane receiver (UFFDIO_COPY, which
 * wakes the vCPU). In the normal class each wake-up of theirs can wait for
 * a core behind the bulk threads, the vCPUs and the event loops on a 2-core
 * host: that wait is the slow faults' tail. The loops in SCHED_RR
 * (PPSIM_LOOP_RR, loop-priority.ts) made post-copy 40–70 % slower because
 * the loops do bulk work too; these threads do fault work only and sleep
 * otherwise, so raising them alone should not take the background's CPU.
 *
 * Exactly those three threads, with reset-on-fork (they start nothing, but
 * nothing could inherit it either); the bulk threads, vCPUs and loops stay
 * in their class. The kernel's real-time throttling (sched_rt_runtime_us,
 * 950000 of each 1000000 µs by default) stays as it is: a lane thread that
 * spun would still leave the rest of the box 5 % of each core. Needs
 * CAP_SYS_NICE or RLIMIT_RTPRIO: without it the threads stay as they are and
 * the process says so once. The simulator's side: src/sim/host-lane.ts
 * (docs/real.md "The fault lane's threads in SCHED_RR").
 */
import { loadAddon } from "./native-load.js";

export const DEFAULT_LANE_RR = 0;

/** The thread's part on a fault's way. */
export type LaneThread = "fault reader" | "fault lane" | "lane server";

interface RawSched {
  schedRealtimeThread(tid: number, priority: number): void;
}

/**
 * PPSIM_LANE_RR's priority: 0 (unset, empty or "0") leaves the lane's threads
 * alone. Anything but an integer 0 … 99 is refused (thrown): a typo must not
 * turn the measurement it was meant for into one of the default.
 */
export function laneRealtimePriority(): number {
  const v = process.env.PPSIM_LANE_RR;
  if (v === undefined || v.trim() === "") return DEFAULT_LANE_RR;
  // Decimal digits only: Number() would take "0x10" or "1e1" as well.
  const n = /^\s*\d{1,2}\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw new RangeError(`PPSIM_LANE_RR must be an integer 0 … 99 (0: off, 1 … 99: the fault lane's threads in SCHED_RR at that priority), not ${JSON.stringify(v)}`);
  return n;
}

let refused: string | null = null;
const raised: { which: LaneThread; tid: number; priority: number }[] = [];

/**
 * Puts one of the lane's threads (its kernel id: the native object's tid(),
 * 0 if it does not run) in SCHED_RR at laneRealtimePriority(). Returns the
 * priority set, 0 if left alone: the option off, the thread not running, or
 * the process not allowed (the first refusal is logged, later ones are not
 * tried: the privilege does not come back within a run).
 */
export function raiseLaneThread(which: LaneThread, tid: number, log?: (line: string) => void): number {
  const want = laneRealtimePriority();
  if (want === 0 || tid === 0 || refused !== null) return 0;
  try {
    loadAddon<RawSched>().schedRealtimeThread(tid, want);
  } catch (e) {
    refused = e instanceof Error ? e.message : String(e);
    log?.(`fault lane's threads left in the normal scheduling class (SCHED_RR needs CAP_SYS_NICE or RLIMIT_RTPRIO): ${refused}`);
    return 0;
  }
  raised.push({ which, tid, priority: want });
  if (raised.length > 64) raised.shift(); // a long-lived destination raises two per session: the recent ones
  return want;
}

/** The threads this process raised so far, and the refusal if there was one (what a run's log says; tests). */
export function laneThreadsRaised(): { threads: readonly { which: LaneThread; tid: number; priority: number }[]; refused: string | null } {
  return { threads: raised.slice(), refused };
}
