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
 * cycle left over. Nice is per thread on Linux, so each vCPU thread sets
 * its own as it starts, right after its first step (ppsim-guest
 * --vcpu-nice): lowered before it, a destination's new vCPU waited
 * milliseconds for a core before it ran at all, and that first step is
 * where the guest's downtime ends (issue 9); one step at nice 0 is
 * microseconds, or a sleep in its first fault.
 * The agent used to renice them after RUN/RESUME, watching /proc/PID/task
 * for them: a destination's new vCPUs ran at nice 0 meanwhile and took the
 * cores from the control thread's RESUME reply and the agents — 6–9 ms of a
 * post-copy downtime on a 2-core host (docs/real-benchmarks.md). A control
 * thread at nice 19 would answer late, so only vCPU threads are lowered.
 * PPSIM_VCPU_NICE overrides (0: leave every thread alone).
 *
 * A PAUSE must wait for every vCPU to get a CPU, see the request and park:
 * at nice 19 on a busy host that took milliseconds of the downtime. The
 * guest itself raises its vCPU threads to nice 0 as PAUSE arrives and lowers
 * them again on RESUME before they wake (native/guest/vcpu.cc), with the
 * tids it knows: no /proc walk from the agent's loop inside the downtime.
 */
import { readdirSync } from "node:fs";
import { setPriority } from "node:os";
import type { GuestProcess } from "./guest-process.js";
import { niceFromEnv } from "./dataplane.js";

export const DEFAULT_VCPU_NICE = 19;

export function vcpuNice(): number {
  return niceFromEnv("PPSIM_VCPU_NICE", DEFAULT_VCPU_NICE);
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

/**
 * Runs a control call that starts or restarts vCPU threads (RUN, RESUME).
 * New threads lower their own priority as they start (ppsim-guest
 * --vcpu-nice); this pass after the reply catches any other thread.
 */
export async function startingVcpus<T>(g: GuestProcess, call: () => Promise<T>): Promise<T> {
  const result = await call();
  deprioritiseVcpus(g);
  return result;
}
