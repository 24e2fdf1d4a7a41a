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
 * cycle left over. Nice is per thread on Linux, and vCPU threads are created
 * at RUN/RESUME: so after those calls every thread of the guest but its main
 * (control) thread is reniced. PPSIM_VCPU_NICE overrides (0: leave them).
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

/** Renices the guest's vCPU threads (all but the main thread); best effort. */
export function deprioritiseVcpus(g: GuestProcess): void {
  const nice = vcpuNice();
  const pid = g.layout.pid;
  if (nice === 0) return;
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
