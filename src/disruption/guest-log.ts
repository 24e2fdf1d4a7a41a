/**
 * The native guest's progress log (PROGRESS_LOG on its control socket: steps
 * per time slot per vCPU since its vCPUs started), on the agent's clock, and
 * how the source agent joins its own guest's log (up to the pause) with the
 * destination's (from the resume) into one ProgressTrace.
 */
import { ProgressRecorder, type ProgressTrace } from "./recorder.js";

export interface VcpuLog {
  slotUs: number;
  /** Steps completed in each slot, from the log's origin. */
  steps: number[];
}

export interface GuestLog {
  /** When slot 0 began, on the agent's clock (µs). */
  originUs: number;
  vcpus: VcpuLog[];
}

/** Most slots a log may hold per vCPU (the guest keeps 32 768; a peer's is checked against this). */
export const MAX_LOG_SLOTS = 1 << 15;
/** Slots per vCPU the destination sends in its final report (pairs merge beyond). */
export const SENT_LOG_SLOTS = 1 << 14;

/** Pairs of slots merged until at most `max` are left. */
function coarsen(v: VcpuLog, max: number): VcpuLog {
  let { slotUs, steps } = v;
  while (steps.length > max) {
    const next: number[] = [];
    for (let i = 0; i < steps.length; i += 2) next.push(steps[i] + (steps[i + 1] ?? 0));
    steps = next;
    slotUs *= 2;
  }
  return { slotUs, steps };
}

/** The part of a log from `fromUs` to `toUs`, at most SENT_LOG_SLOTS slots per vCPU: what a destination sends. */
export function logToSend(log: GuestLog, fromUs: number, toUs = Infinity): GuestLog {
  return {
    originUs: log.originUs,
    vcpus: log.vcpus.map((v) => {
      const skip = Math.max(0, Math.floor((fromUs - log.originUs) / v.slotUs));
      const keep = Math.max(0, Math.ceil((toUs - log.originUs) / v.slotUs));
      // Keep slot indices aligned to the origin: zero what comes before `fromUs`.
      const steps = v.steps.slice(0, keep).map((s, i) => (i < skip ? 0 : s));
      return coarsen({ slotUs: v.slotUs, steps }, SENT_LOG_SLOTS);
    }),
  };
}

/** A log from a peer, checked (sizes, numbers), or null with nothing trusted. */
export function checkGuestLog(x: unknown, vcpus: number): GuestLog | null {
  const o = x as Partial<GuestLog> | null;
  if (typeof o !== "object" || o === null || !Number.isFinite(o.originUs) || !Array.isArray(o.vcpus) || o.vcpus.length !== vcpus) return null;
  for (const v of o.vcpus as unknown[]) {
    const l = v as Partial<VcpuLog> | null;
    if (typeof l !== "object" || l === null || !(typeof l.slotUs === "number" && l.slotUs >= 1 && l.slotUs <= 1e9)) return null;
    if (!Array.isArray(l.steps) || l.steps.length > MAX_LOG_SLOTS) return null;
    for (const s of l.steps) if (typeof s !== "number" || !(s >= 0 && s <= 0xffffffff)) return null;
  }
  return o as GuestLog;
}

/**
 * One trace over [fromUs, toUs] from logs that each cover part of it (the
 * source guest's, the destination guest's): each slot's steps count at its
 * middle; the slot width is the coarsest log's.
 */
export function traceFromLogs(logs: GuestLog[], fromUs: number, toUs: number, baselineStepsPerUs: number): ProgressTrace {
  const vcpus = logs[0]?.vcpus.length ?? 0;
  const slotUs = Math.max(1, ...logs.flatMap((l) => l.vcpus.map((v) => v.slotUs)));
  const rec = new ProgressRecorder(vcpus, baselineStepsPerUs, slotUs);
  rec.start(fromUs);
  for (const log of logs) {
    log.vcpus.forEach((v, vi) => {
      for (let i = 0; i < v.steps.length; i++) {
        const at = log.originUs + (i + 0.5) * v.slotUs;
        if (at <= toUs && v.steps[i] > 0) rec.add(vi, at, v.steps[i]);
      }
    });
  }
  rec.stop(toUs);
  return rec.trace();
}
