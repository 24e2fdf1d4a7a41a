/**
 * `ppsim calibrate`'s measurement of `fault_wake_us` (src/sim/host-cpu.ts):
 * how long a vCPU thread (nice 19) that slept in a demand fault waits for a
 * core once its page is installed, while a post-copy stream runs beside it.
 * Spinners (calibrate-cpu.ts's guest share) never sleep, so they do not see
 * this wait; a real destination vCPU pays it at every fault.
 *
 * One thread touches missing pages of a registered mapping one after
 * another (a libuv pool thread, `touchAsync`); the fault reader hands each
 * fault to JS, which sets that thread's nice (the fault names it:
 * UFFD_FEATURE_THREAD_ID), installs the page with UFFDIO_COPY and stamps
 * the time. The touch's completion reaches JS a hand-off later. Faults
 * alternate between nice 19 (the vCPUs' nice) and nice 0, so that the
 * hand-off and the nice-0 wake-up are measured under the same load: the
 * figure is the mean install → completion at nice 19 minus the mean at
 * nice 0. The mean, not the median: a vCPU loses the sum of its waits.
 */
import { setPriority } from "node:os";
import { registeredMapping } from "./calibrate-bulk.js";
import { DEFAULT_VCPU_NICE as VCPU_NICE } from "./guest-spawn.js";
import { constants, startFaultReader, uffdCopy } from "./native.js";

export interface WakeLoop {
  /** Stops the loop; the install → completion times of the faults at nice 19 and at nice 0, µs. */
  stop(): Promise<{ niceUs: number[]; baseUs: number[] }>;
}

/**
 * `threads` touching threads (the guest's vCPUs fault at once), each faulting
 * one page after another in its own part of the mapping, until `stop()` (at
 * most `maxFaults` in all).
 */
export function wakeLoop(maxFaults: number, threads = 1): WakeLoop {
  const C = constants();
  const PS = C.PAGE_SIZE;
  const { map, uffd, close } = registeredMapping("ppsim-calibrate-wake", maxFaults, C.UFFD_FEATURE_THREAD_ID);
  const page = Buffer.alloc(PS, 5);
  /** Fault i's install time (performance.now(), ms) and the nice its thread woke at. */
  const installed = new Map<number, { at: number; nice: number }>();
  const tids = new Set<number>();
  const reader = startFaultReader(uffd, (evs) => {
    for (const e of evs) {
      const off = e.address - map.address;
      const i = Number(off / BigInt(PS));
      const nice = i % 2 === 0 ? VCPU_NICE : 0;
      // PRIO_PROCESS with a thread id sets that one thread's nice on Linux. Raising it back to 0 needs
      // CAP_SYS_NICE: without it the nice-0 faults stay at 19 and the difference comes out near 0 (an underestimate).
      if (e.tid > 0) {
        tids.add(e.tid);
        try {
          setPriority(e.tid, nice);
        } catch {
          // best effort (see above)
        }
      }
      uffdCopy(uffd, e.address & ~BigInt(PS - 1), page);
      installed.set(i, { at: performance.now(), nice });
    }
  });
  const niceUs: number[] = [];
  const baseUs: number[] = [];
  let stopping = false;
  const each = Math.floor(maxFaults / threads);
  const one = async (first: number) => {
    for (let k = 0; k < each && !stopping; k++) {
      const i = first + k;
      await map.touchAsync(i * PS);
      const done = performance.now();
      const got = installed.get(i);
      installed.delete(i);
      // Every fault counts, a pool thread's first too: its nice is set before the install that wakes it.
      if (got === undefined) continue;
      (got.nice === VCPU_NICE ? niceUs : baseUs).push((done - got.at) * 1000);
    }
  };
  const loop = Promise.all(Array.from({ length: threads }, (_, t) => one(t * each)));
  loop.catch(() => undefined); // handled: stop() rethrows it after cleaning up
  return {
    stop: async () => {
      stopping = true;
      try {
        await loop;
      } finally {
        reader.stop();
        // The pool's threads serve the rest of the process: back to nice 0 (best effort, as above).
        for (const t of tids) {
          try {
            setPriority(t, 0);
          } catch {
            // best effort
          }
        }
        close();
      }
      return { niceUs, baseUs };
    },
  };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);

/** The figure from a loop's times, µs (≥ 0; null when either nice saw no fault). */
export function wakeFigure(t: { niceUs: number[]; baseUs: number[] }): number | null {
  if (t.niceUs.length === 0 || t.baseUs.length === 0) return null;
  return Math.max(0, mean(t.niceUs) - mean(t.baseUs));
}
