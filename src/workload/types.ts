/**
 * A validated workload (see SPEC.md): every default filled in, sizes in bytes
 * and pages, so that the simulator and the guest config writer never guess.
 */

import type { Trace } from "./trace-format.js";

/** The newest schema version; version 1 files (no trace phases) are read too. */
export const WORKLOAD_SCHEMA_VERSION = 2;
export const WORKLOAD_SCHEMA_VERSIONS: readonly number[] = [1, 2];

export type PatternKind = "sequential" | "uniform" | "hotcold" | "zipf";
export const PATTERN_KINDS: readonly PatternKind[] = ["sequential", "uniform", "hotcold", "zipf"];

/** Shares of memory: the pattern covers pages [floor(offset*N), floor((offset+size)*N)), at least one. */
export interface Region {
  offset: number;
  size: number;
}

export interface Pattern {
  kind: PatternKind;
  region: Region;
  /** sequential: pages advanced per access. */
  stride: number;
  /** hotcold: share of the region that is hot. */
  hotShare: number;
  /** hotcold: probability an access goes to the hot set. */
  hotAccess: number;
  /** zipf: P(rank r) ∝ r^-exponent. */
  exponent: number;
}

/** A recorded trace replayed by a phase (schema 2, SPEC.md "Trace phases"). */
export interface TraceReplay {
  /** vCPU v replays traces[v % traces.length]. `speed`: instructions per µs of guest time. */
  traces: { path: string; trace: Trace; speed: number }[];
  /** true: the trace starts over at its end and the phase never ends; false: one pass, then the next phase. */
  loop: boolean;
  /** Copies of the program per vCPU, each in its own memory; "fill": as many as the region holds. */
  copies: number | "fill";
}

/**
 * A phase. With `trace` set it replays a recorded program: then `steps`,
 * `computeNs` and `writeShare` describe one pass of one copy of the first
 * trace (for estimates only) and `pattern` holds only the region.
 */
export interface WorkloadPhase {
  trace?: TraceReplay;
  name: string | null;
  /** Accesses per vCPU in this phase. */
  steps: number;
  computeNs: number;
  writeShare: number;
  pattern: Pattern;
}

export interface Workload {
  name: string;
  description: string;
  memBytes: number;
  pageSize: number;
  /** memBytes / pageSize. */
  pageCount: number;
  vcpus: number;
  zeroShare: number;
  warmupMs: number;
  phases: WorkloadPhase[];
  /** Memory backed by huge pages (src/sim/huge-pages.ts); absent: base pages only. */
  hugePages?: HugePages;
  /** More runnable tasks per vCPU beside the one running `phases` (src/sim/async-faults.ts). */
  tasks?: Tasks;
}

/**
 * How a VMM moves huge-page-backed memory. "whole": every transfer, fault,
 * dirty bit and zero check covers a whole huge page (hugetlbfs, UFFDIO_COPY
 * of the huge page). "split": base pages move on demand and the destination
 * maps each huge page with base pages until all its pieces arrived and it is
 * collapsed (THP, khugepaged); dirty logging at the source splits them too.
 */
export type HugePolicy = "whole" | "split";
export const HUGE_POLICIES: readonly HugePolicy[] = ["whole", "split"];

export interface HugePages {
  /** Bytes of one huge page: a power-of-two multiple of pageSize (2 MiB, 1 GiB). */
  size: number;
  policy: HugePolicy;
  /** split: from a huge page's last piece arriving to its collapse into one huge mapping, µs. */
  collapseUs: number;
  /** Extra time per step while the page touched is mapped with base pages (TLB misses, longer walks), as a share of the step. */
  smallPageSlowdown: number;
}

export interface Tasks {
  /** Task 0 runs the workload's `phases`; these run beside it on every vCPU. Pattern phases only. */
  extra: { name: string | null; phases: WorkloadPhase[] }[];
  /** A faulting task parks and another runnable task of its vCPU runs (the guest's async page faults). */
  asyncFaults: boolean;
  /** Accesses a task makes before its vCPU switches to the next runnable one. */
  sliceSteps: number;
  /** What a switch between tasks costs the vCPU, µs (with async faults: the notification and the guest's context switch). */
  switchUs: number;
}

export const HUGE_DEFAULTS = { policy: "whole", collapseMs: 1, smallPageSlowdown: 0.1 } as const;
export const TASK_DEFAULTS = { asyncFaults: true, sliceSteps: 1000, switchUs: 2 } as const;

export const PATTERN_DEFAULTS = {
  region: { offset: 0, size: 1 },
  stride: 1,
  hotShare: 0.1,
  hotAccess: 0.9,
  exponent: 1.1,
} as const;

export const WORKLOAD_DEFAULTS = {
  pageSize: 4096,
  vcpus: 1,
  zeroShare: 0,
  warmupMs: 0,
} as const;

export const MAX_VCPUS = 64;
/**
 * Guest memory at most (1 TiB): the simulator holds a few bytes per page (a
 * 16 TiB guest would need tens of GiB of it) and the guest process maps it all.
 */
export const MAX_MEMORY_BYTES = 2 ** 40;
/** Warmup at most: an hour of running before a migration is a mistake, not a workload. */
export const MAX_WARMUP_MS = 3_600_000;

/** Page p's region as [start, end) page indices, per SPEC.md. */
export function regionPages(region: Region, pageCount: number): { start: number; end: number } {
  const start = Math.floor(region.offset * pageCount);
  const end = Math.min(pageCount, Math.max(start + 1, Math.floor((region.offset + region.size) * pageCount)));
  return { start, end };
}

/** SPEC.md: page p is zero before the guest writes iff its golden-ratio hash falls below zeroShare. */
export function isInitiallyZero(page: number, zeroShare: number): boolean {
  return (Math.imul(page, 0x9e3779b1) >>> 0) / 4294967296 < zeroShare;
}

/** The same workload over another memory size (regions are shares, so they scale with it). */
export function withMemory(w: Workload, memBytes: number): Workload {
  if (!Number.isSafeInteger(memBytes) || memBytes <= 0 || memBytes % w.pageSize !== 0) {
    throw new Error(`memory of ${memBytes} bytes must be a positive multiple of the page size ${w.pageSize}`);
  }
  if (memBytes > MAX_MEMORY_BYTES) throw new Error(`memory of ${memBytes} bytes is more than the ${MAX_MEMORY_BYTES} (1TiB) a guest may have`);
  return { ...w, memBytes, pageCount: memBytes / w.pageSize };
}
