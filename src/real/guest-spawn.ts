/**
 * Guests run their vCPU threads at a lower CPU priority than everything else.
 *
 * Why: the guest's vCPUs are busy loops (compute_ns spins). On a host with
 * fewer cores than vCPUs + agents (a 2-core CI box running 4 vCPUs and both
 * agents), the agents' threads — and the guest's own control thread, which
 * answers pause and resume — would otherwise wait for CPU slices behind
 * spinning vCPUs: every fault reply and the downtime would carry
 * milliseconds of scheduling delay that a real deployment (migration threads
 * on cores of their own) does not have. At nice 19 the scheduler runs a
 * waking agent or control thread at once, while the vCPUs still get every
 * cycle left over. Nice is per thread on Linux, and the vCPU threads are
 * created by the guest's control thread at RUN/RESUME with its nice (0). So
 * right after sending those requests the agent watches /proc/PID/task for the
 * vCPU threads (a few hundred µs at most) and renices them as they appear:
 * a destination's vCPUs left at nice 0 until RESUME's reply took the CPU from
 * the agents in the middle of the downtime, and a control thread at nice 19
 * answered late. PPSIM_VCPU_NICE overrides (0: leave every thread alone).
 */
import { readdirSync } from "node:fs";
import { setPriority } from "node:os";
import type { GuestProcess } from "./guest-process.js";

export const DEFAULT_VCPU_NICE = 19;

export function vcpuNice(): number {
  const env = process.env.PPSIM_VCPU_NICE;
  const n = env === undefined || env === "" ? DEFAULT_VCPU_NICE : Number(env);
  return Number.isInteger(n) && n >= 0 && n <= 19 ? n : DEFAULT_VCPU_NICE;
}

/**
 * Before a PAUSE: the vCPUs must each get a CPU to notice the request and
 * park, which at nice 19 on a busy host takes milliseconds of the downtime.
 */
export function restoreVcpus(g: GuestProcess): void {
  if (vcpuNice() !== 0) deprioritiseVcpus(g, 0);
}

/** Renices the guest's vCPU threads (all but the main thread); best effort. */
export function deprioritiseVcpus(g: GuestProcess, nice = vcpuNice()): void {
  const pid = g.layout.pid;
  if (nice === 0 && vcpuNice() === 0) return;
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return;
  }
  for (const t of tids) {
    const tid = Number(t);
    if (tid === pid) continue;
    try {
      setPriority(tid, nice);
    } catch {
      /* the thread exited, or we may not: run at the default priority */
    }
  }
}

/** How long to watch for the vCPU threads of a RUN/RESUME, at most. */
const WATCH_MS = 20;

/** Runs a control call that creates vCPU threads (RUN, RESUME), renicing them as soon as they exist. */
export async function startingVcpus<T>(g: GuestProcess, call: () => Promise<T>): Promise<T> {
  const pending = call(); // the request is written to the control socket now
  if (vcpuNice() !== 0) {
    const want = 1 + g.layout.vcpus;
    const deadline = performance.now() + WATCH_MS;
    while (performance.now() < deadline && taskCount(g.layout.pid) < want) {
      /* spin: the guest needs only its control thread to create them */
    }
    deprioritiseVcpus(g);
  }
  const result = await pending;
  deprioritiseVcpus(g);
  return result;
}

function taskCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/task`).length;
  } catch {
    return Infinity;
  }
}
