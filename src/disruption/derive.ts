/**
 * What the guest felt, derived from a progress log (recorder.ts) the same way
 * for both back ends. Utilization is work done / work an unmigrated vCPU does
 * in the same time; time after the recorded span counts as full speed (the
 * migration is over there).
 *
 * - stall: a run of slots in which a vCPU got less than 10 % of its speed;
 *   its length is the time lost over the run and the slot either side (exact
 *   for a full stop longer than a slot; shorter stops show only as lower
 *   utilization — the log's resolution is one slot);
 * - work lost: vCPU-seconds an unmigrated run would have done over the span
 *   but this one did not;
 * - MMU (minimum mutator utilization, from garbage collection): for each
 *   window size, the worst utilization of any window of that size that starts
 *   inside the span;
 * - time to responsiveness: from the start until the guest (all vCPUs) stays
 *   at ≥ 90 % over every 100 ms window.
 */
import type { FaultFigures } from "./faults.js";
import { LATENCY_BUCKETS, latencyBucket } from "./faults.js";
import type { ProgressTrace } from "./recorder.js";

export const MMU_WINDOWS_MS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000] as const;
export const STALL_BELOW = 0.1;
export const RESPONSIVE_WINDOW_MS = 100;
export const RESPONSIVE_AT = 0.9;

export interface StallFigures {
  count: number;
  longest_ms: number;
  p50_ms: number;
  p99_ms: number;
  /** Stalls per bucket: index N counts stalls of [2^N, 2^(N+1)) µs. */
  log2_us: number[];
}

export interface MmuPoint {
  window_ms: number;
  /** Worst utilization (0..1) over windows of this size; null when the size is below the log's slot width. */
  min_utilization: number | null;
}

export interface VcpuDisruption {
  work_lost_vcpu_s: number;
  stalls: StallFigures;
  time_to_responsive_ms: number;
  /** Minimum utilization per window of MMU_WINDOWS_MS (null: below the slot width). */
  mmu: (number | null)[];
}

export interface GuestDisruption {
  /** Resolution of the progress log, µs. */
  slot_us: number;
  /** Time covered: migration start to its end, ms. */
  span_ms: number;
  vcpus: number;
  work_lost_vcpu_s: number;
  /** Work done over the span as a share of an unmigrated run's (0..1). */
  utilization: number;
  longest_stall_ms: number;
  stalls: StallFigures;
  time_to_responsive_ms: number;
  mmu: MmuPoint[];
  per_vcpu: VcpuDisruption[];
  /** Demand-fault waits in QEMU's vocabulary; null where the back end cannot tell them per vCPU. */
  faults: FaultFigures | null;
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;
const r4 = (x: number) => Math.round(x * 10000) / 10000;

/** Per slot, the utilization (0..1+) of one vCPU's work series; the partial last slot is scaled by its width. */
function utilizationOf(trace: ProgressTrace, work: Float64Array): Float64Array {
  const { slotUs, spanUs, baselinePerUs } = trace;
  const u = new Float64Array(work.length);
  for (let i = 0; i < work.length; i++) {
    const width = Math.min(slotUs, spanUs - i * slotUs);
    // The part of a slot beyond the span runs at full speed.
    u[i] = width > 0 ? (work[i] / baselinePerUs + (slotUs - width)) / slotUs : 1;
  }
  return u;
}

function stallsOf(u: Float64Array, slotUs: number): number[] {
  const out: number[] = [];
  const lost = (i: number) => (i < 0 || i >= u.length ? 0 : Math.min(1, Math.max(0, 1 - u[i])) * slotUs);
  let i = 0;
  while (i < u.length) {
    if (u[i] >= STALL_BELOW) {
      i++;
      continue;
    }
    let j = i;
    let us = lost(i - 1);
    while (j < u.length && u[j] < STALL_BELOW) us += lost(j++);
    out.push(us + lost(j));
    i = j;
  }
  return out;
}

function stallFigures(stallsUs: number[]): StallFigures {
  const sorted = [...stallsUs].sort((a, b) => a - b);
  const at = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] : 0);
  const log2 = new Array<number>(LATENCY_BUCKETS).fill(0);
  for (const s of sorted) log2[latencyBucket(s)]++;
  return { count: sorted.length, longest_ms: r3(at(1) / 1000), p50_ms: r3(at(0.5) / 1000), p99_ms: r3(at(0.99) / 1000), log2_us: log2 };
}

/** Prefix sums of `u` padded with full-speed slots up to `len`. */
function prefix(u: Float64Array, len: number): Float64Array {
  const p = new Float64Array(len + 1);
  for (let i = 0; i < len; i++) p[i + 1] = p[i] + (i < u.length ? u[i] : 1);
  return p;
}

/** Minimum mean of `u` over windows of `k` slots starting inside the span. */
function minWindow(u: Float64Array, k: number): number {
  const n = Math.max(1, u.length);
  const p = prefix(u, n - 1 + k);
  let min = Infinity;
  for (let i = 0; i < n; i++) min = Math.min(min, (p[i + k] - p[i]) / k);
  return min;
}

/** Slots in a window (0 when the window is shorter than a slot). */
function slotsFor(windowMs: number, slotUs: number): number {
  return windowMs * 1000 < slotUs ? 0 : Math.round((windowMs * 1000) / slotUs);
}

function responsiveAt(u: Float64Array, slotUs: number, spanUs: number): number {
  const k = Math.max(1, slotsFor(RESPONSIVE_WINDOW_MS, slotUs));
  const p = prefix(u, u.length - 1 + k);
  for (let i = u.length - 1; i >= 0; i--) {
    if ((p[i + k] - p[i]) / k < RESPONSIVE_AT) return Math.min(spanUs, (i + 1) * slotUs);
  }
  return 0;
}

function mmuOf(u: Float64Array, slotUs: number): (number | null)[] {
  return MMU_WINDOWS_MS.map((w) => {
    const k = slotsFor(w, slotUs);
    return k < 1 ? null : r4(Math.max(0, Math.min(1, minWindow(u, k))));
  });
}

function workLostUs(trace: ProgressTrace, work: Float64Array): number {
  let done = 0;
  for (let i = 0; i < work.length; i++) done += work[i];
  return Math.max(0, trace.spanUs - done / trace.baselinePerUs);
}

/** The whole guest's utilization per slot: the mean over vCPUs. */
export function guestUtilization(trace: ProgressTrace): Float64Array {
  const n = trace.work[0]?.length ?? 0;
  const sum = new Float64Array(n);
  for (const w of trace.work) {
    const u = utilizationOf(trace, w);
    for (let i = 0; i < n; i++) sum[i] += u[i] / trace.work.length;
  }
  return sum;
}

export function deriveDisruption(trace: ProgressTrace, faults: FaultFigures | null = null): GuestDisruption {
  const { slotUs, spanUs } = trace;
  const perVcpu = trace.work.map((w) => {
    const u = utilizationOf(trace, w);
    return { u, stalls: stallsOf(u, slotUs), lostUs: workLostUs(trace, w) };
  });
  const all = guestUtilization(trace);
  const allStalls = perVcpu.flatMap((v) => v.stalls);
  const stalls = stallFigures(allStalls);
  const lostUs = perVcpu.reduce((a, v) => a + v.lostUs, 0);
  const vcpus = trace.work.length;
  const mmu = mmuOf(all, slotUs);
  return {
    slot_us: slotUs,
    span_ms: r3(spanUs / 1000),
    vcpus,
    work_lost_vcpu_s: r4(lostUs / 1e6),
    utilization: spanUs > 0 && vcpus > 0 ? r4(Math.max(0, 1 - lostUs / (spanUs * vcpus))) : 1,
    longest_stall_ms: stalls.longest_ms,
    stalls,
    time_to_responsive_ms: r3(responsiveAt(all, slotUs, spanUs) / 1000),
    mmu: MMU_WINDOWS_MS.map((w, i) => ({ window_ms: w, min_utilization: mmu[i] })),
    per_vcpu: perVcpu.map((v) => ({
      work_lost_vcpu_s: r4(v.lostUs / 1e6),
      stalls: stallFigures(v.stalls),
      time_to_responsive_ms: r3(responsiveAt(v.u, slotUs, spanUs) / 1000),
      mmu: mmuOf(v.u, slotUs),
    })),
    faults,
  };
}

/** Per-vCPU utilization over time, averaged into at most `points` buckets (for charts). */
export function utilizationTimeline(trace: ProgressTrace, points = 400): { t_ms: number[]; per_vcpu: number[][] } {
  const n = trace.work[0]?.length ?? 0;
  const group = Math.max(1, Math.ceil(n / points));
  const t: number[] = [];
  for (let i = 0; i < n; i += group) t.push(r3((i * trace.slotUs) / 1000));
  const per = trace.work.map((w) => {
    const u = utilizationOf(trace, w);
    const out: number[] = [];
    for (let i = 0; i < n; i += group) {
      let s = 0;
      const end = Math.min(n, i + group);
      for (let j = i; j < end; j++) s += u[j];
      out.push(r4(Math.min(1, s / (end - i))));
    }
    return out;
  });
  return { t_ms: t, per_vcpu: per };
}
