/**
 * The default (PPSIM_LANE_RR=N, 0 … 99; 0: off; DEFAULT_LANE_RR below): the
 * fault lane's native threads in SCHED_RR (issue 9: demand-fault p99 ≤ 1 ms
 * while the background runs at full speed).
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
 * Why it cannot starve the host: each of the three blocks in a read between
 * faults (the reader in poll on the uffd, the other two in recv on the lane's
 * socket), and a fault's work is one read, one pread or UFFDIO_COPY and one
 * write; faults come only as fast as vCPUs stop on missing pages (each vCPU
 * waits for its one), and end with the post-copy.
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
import { loopRealtimePriority, rrPriority, switchoverRealtimePriority } from "./loop-priority.js";
import { loadAddon } from "./native-load.js";

/**
 * The default since issue 9's quiet-box check (docs/real-benchmarks.md: fault
 * p99 182–313 µs against 412–1302 with the lane in the normal class). 1, the
 * lowest real-time priority: any real-time priority runs ahead of every
 * normal-class thread (the bulk threads, loops, vCPUs, other sessions), which
 * is the wait it removes; the three threads do not compete with one another
 * for long (a fault passes them one after the other), and a higher value
 * would preempt the system's own real-time threads (threaded IRQs at 50, the
 * kernel's stoppers at 99), which are more urgent than a guest's fault.
 */
export const DEFAULT_LANE_RR = 1;

/** The thread's part on a fault's way. */
export type LaneThread = "fault reader" | "fault lane" | "lane server";

interface RawSched {
  schedRealtimeThread(tid: number, priority: number): void;
}

/**
 * PPSIM_LANE_RR's priority: unset or empty is the default, 0 leaves the
 * lane's threads alone. Anything but an integer 0 … 99 is refused (thrown):
 * a typo must not turn the measurement it was meant for into one of the
 * default.
 */
export function laneRealtimePriority(): number {
  return rrPriority("PPSIM_LANE_RR", DEFAULT_LANE_RR, "the fault lane's threads in SCHED_RR at that priority");
}

/** Reads every real-time knob (PPSIM_LANE_RR, PPSIM_SWITCHOVER_RR, PPSIM_LOOP_RR): a bad value throws here, at an agent's start, before anything runs. */
export function checkRealtimeKnobs(): void {
  laneRealtimePriority();
  switchoverRealtimePriority();
  loopRealtimePriority();
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
