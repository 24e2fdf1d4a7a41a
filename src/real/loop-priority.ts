/**
 * Opt-in (PPSIM_LOOP_RR=N): the threads on a demand fault's way and in the
 * downtime run first (issue 9).
 *
 * Why: a demand fault crosses both agents' event loops twice (docs/real.md
 * "Where a fault's time goes"). The fault trace (fault-trace.ts) found the
 * slow faults' time there, and mostly as the loop's thread runnable but
 * waiting for a CPU: 2–20 ms at a time, 0.3–1.4 s per 1 GiB post-copy at
 * the destination, on a 2-core host where bulk threads, vCPUs, V8's helper
 * threads and other processes keep both cores busy. A nice value does not
 * help against the last (Linux's autogroups share the CPU between sessions
 * before nice values count: PPSIM_LOOP_NICE=-10 left the wait as it was),
 * the real-time class does: in SCHED_RR the loop's thread waited 0.3–4 ms
 * in all per run. So each agent's event loop, and each guest's control
 * thread (which answers PAUSE and RESUME), asks for SCHED_RR at a low
 * real-time priority, with reset-on-fork: the threads and processes they
 * create (bulk threads, the fault reader, guests, vCPUs) start in the normal
 * class. The kernel's real-time throttling (sched_rt_runtime_us) still
 * leaves other threads 5 % of each CPU should a loop ever spin.
 *
 * Not the default, by measurement (docs/real-benchmarks.md, "The fault's
 * way traced"): on the loaded 2-core box it cut the faults' p50 to a third
 * and shortened RESUME, but the post-copy took 40–70 % longer (the loops
 * preempting the bulk threads on both cores) and the downtime was not
 * better. Needs CAP_SYS_NICE or RLIMIT_RTPRIO: without it the loop stays as
 * it is and the agent says so once. PPSIM_LOOP_RR=N (1 … 99) turns it on at
 * that priority; unset or 0 leaves the scheduling class alone.
 */
import { loadAddon } from "./native-load.js";

export const DEFAULT_LOOP_RR = 0;

interface RawSched {
  schedRealtimeThisThread(priority: number): void;
  schedNormalThisThread(): void;
  schedPolicy(tid: number): { policy: number; resetOnFork: boolean; priority: number };
}

/** SCHED_RR as sched_getscheduler reports it. */
export const SCHED_RR = 2;

/** PPSIM_LOOP_RR's priority: unset or empty is the default (off); anything but an integer 0 … 99 is refused (thrown; the agents ask at their start), like the other knobs. */
export function loopRealtimePriority(): number {
  return rrPriority("PPSIM_LOOP_RR", DEFAULT_LOOP_RR, "the event loops and the guests' control threads in SCHED_RR at that priority");
}

/** A thread's scheduling class (0: the calling one): policy is SCHED_* (0 normal, 2 RR). */
export function schedPolicy(tid = 0): { policy: number; resetOnFork: boolean; priority: number } {
  return loadAddon<RawSched>().schedPolicy(tid);
}

let applied: { priority: number; error: string | null } | null = null;

/**
 * Puts this process's event loop (the calling thread: call it from the main
 * thread) in SCHED_RR at loopRealtimePriority(), once per process; before
 * the guest is spawned. Returns what it did (priority 0: left alone).
 */
export function raiseLoopPriority(log?: (line: string) => void): { priority: number; error: string | null } {
  if (applied !== null) return applied;
  const want = loopRealtimePriority();
  if (want === 0) return (applied = { priority: 0, error: null });
  try {
    loadAddon<RawSched>().schedRealtimeThisThread(want);
    applied = { priority: want, error: null };
  } catch (e) {
    const error = e instanceof Error ? e.message : String(e);
    applied = { priority: 0, error };
    log?.(`event loop left in the normal scheduling class (SCHED_RR needs CAP_SYS_NICE or RLIMIT_RTPRIO): ${error}`);
  }
  return applied;
}

/**
 * The default since issue 9's quiet-box check (PPSIM_SWITCHOVER_RR=N, 0 … 99;
 * 0: off): SCHED_RR for the switchover's window only (downtime ≤ 2 ms). The
 * loops in SCHED_RR throughout (PPSIM_LOOP_RR) made post-copy 40–70 % slower,
 * the loops preempting the bulk threads; the downtime's legs are each one
 * thread's wake-up, so here only the threads on that path are raised, and
 * only while it lasts: the source's loop from the pause until the switchover
 * frame is handed to the link, the destination's loop from the hello (post-
 * copy: it has nothing else to do until its guest runs) or the switchover
 * frame (pre-copy, hybrid: before it the loop installs the rounds' pages)
 * until its guest's RESUME is answered, both guests' control threads (idle
 * but for PAUSE / RESUME; --control-rr), and the destination's vCPU threads
 * until their first step (--vcpu-rr). Every window closes itself after
 * SWITCHOVER_WINDOW_MAX_MS whatever its end does (a peer that never answers,
 * a path that forgot the closer). PPSIM_LOOP_RR, if set, wins: the loop is
 * in SCHED_RR already and stays.
 *
 * Priority 1, the lowest real-time one, as for the lane (lane-priority.ts):
 * any real-time priority runs ahead of every normal-class thread, which is
 * all the window needs; a higher one would also preempt the system's own
 * real-time threads (threaded IRQs at 50, the kernel's per-CPU stoppers at
 * 99, an audio server's), whose work is more urgent than a migration's.
 */
export const DEFAULT_SWITCHOVER_RR = 1;

/**
 * The longest a window stays open, ms. A post-copy's window is milliseconds
 * (the guest spawn, ~30 ms, at the destination included); a pre-copy's
 * source window holds its stop-and-copy, within the downtime limit (300 ms by
 * default). One second bounds all of them with room, and a loop thread that
 * the peer left waiting, or that works, is back in the normal class after it.
 */
export const SWITCHOVER_WINDOW_MAX_MS = 1000;

/**
 * PPSIM_SWITCHOVER_RR's priority: unset or empty is the default, 0 is off.
 * Anything but an integer 0 … 99 is refused (thrown; the agents ask at their
 * start): a typo must not turn the measurement it was meant for into one of
 * the default.
 */
export function switchoverRealtimePriority(): number {
  return rrPriority("PPSIM_SWITCHOVER_RR", DEFAULT_SWITCHOVER_RR, "the switchover's window in SCHED_RR at that priority");
}

/** An env knob's real-time priority: unset or blank → `dflt`; else decimal digits 0 … 99, or thrown. */
export function rrPriority(name: string, dflt: number, what: string): number {
  const v = process.env[name];
  if (v === undefined || v.trim() === "") return dflt;
  // Decimal digits only: Number() would take "0x10" or "1e1" as well.
  const n = /^\s*\d{1,2}\s*$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n)) throw new RangeError(`${name} must be an integer 0 … 99 (0: off, 1 … 99: ${what}), not ${JSON.stringify(v)}`);
  return n;
}

/** The guests' control threads' SCHED_RR priority (0: left alone): either option asks for it. */
export function controlRealtimePriority(): number {
  return Math.max(loopRealtimePriority(), switchoverRealtimePriority());
}

let windows = 0; // open windows in this process (a destination agent may hold several sessions)
let windowError: string | null = null;
let windowsCapped = 0;

/**
 * Opens a window (the calling thread: the main one) in SCHED_RR at
 * switchoverRealtimePriority(). Returns the closer, idempotent; a no-op when
 * the option is off or the loop is in SCHED_RR for good. EPERM: logged once,
 * left alone. The window closes itself after `maxMs` (a timer on this loop:
 * it fires at the loop's next turn after that, so the loop's time in the
 * real-time class is bounded by maxMs and one turn), logged.
 */
export function raiseForSwitchover(log?: (line: string) => void, maxMs: number = SWITCHOVER_WINDOW_MAX_MS): () => void {
  const want = switchoverRealtimePriority();
  if (want === 0 || loopRealtimePriority() > 0 || windowError !== null) return () => {};
  if (windows === 0) {
    try {
      loadAddon<RawSched>().schedRealtimeThisThread(want);
    } catch (e) {
      windowError = e instanceof Error ? e.message : String(e);
      log?.(`switchover window left in the normal scheduling class (SCHED_RR needs CAP_SYS_NICE or RLIMIT_RTPRIO): ${windowError}`);
      return () => {};
    }
  }
  windows++;
  let open = true;
  const close = (): void => {
    if (!open) return;
    open = false;
    clearTimeout(cap);
    if (--windows === 0) {
      try {
        loadAddon<RawSched>().schedNormalThisThread();
      } catch (e) {
        log?.(`could not leave the switchover window's SCHED_RR: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
  };
  const cap = setTimeout(() => {
    if (!open) return;
    windowsCapped++;
    log?.(`switchover window closed after ${maxMs} ms without its end (the scheduling class back to normal)`);
    close();
  }, maxMs);
  cap.unref();
  return close;
}

/** Windows open now, and how many closed by their time cap (tests; a run's log says each). */
export function switchoverWindows(): { open: number; capped: number; error: string | null } {
  return { open: windows, capped: windowsCapped, error: windowError };
}
