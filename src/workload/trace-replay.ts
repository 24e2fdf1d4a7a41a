/**
 * A trace phase made ready to replay (SPEC.md "Trace phases"): the sparse
 * recorded pages remapped to dense frames, every window's accesses in replay
 * order (code, then read, then written pages, each ascending), and the
 * layout of the copies in guest memory. Shared by the simulator's access
 * generator and, through guest-config.ts, by the native guest.
 */
import { WorkloadError } from "./parse.js";
import type { Trace } from "./trace-format.js";
import { regionPages, type TraceReplay } from "./types.js";

/** One trace as dense frames. */
export interface ReplayProgram {
  /** Distinct recorded pages: frames 0..footprint-1, in ascending address order. */
  footprint: number;
  windows: number;
  /** Every window's accesses, one frame each, window after window. */
  frames: Uint32Array;
  /** Window r's accesses are frames[start[r] .. start[r+1]). */
  start: Float64Array;
  /** Index (from start[r]) of window r's first data read: the accesses before it are code fetches. */
  readFrom: Uint32Array;
  /** Index (from start[r]) of window r's first write; the accesses before it are reads. */
  writeFrom: Uint32Array;
  /** Guest time of one window, ns (instructions / speed). */
  windowNs: Float64Array;
  /** Accesses in one pass of one copy. */
  accesses: number;
}

export interface CompiledTrace {
  programs: ReplayProgram[];
  /** Copies per vCPU. */
  copies: number;
  /** First guest page of the layout: the region's start rounded up to a multiple of vcpus. */
  base: number;
  /** Frames reserved per copy: the largest footprint of the phase's traces. */
  slot: number;
  loop: boolean;
}

export function accessCounts(t: Trace): { accesses: number; writes: number } {
  let accesses = 0;
  let writes = 0;
  for (const w of t.windows) {
    accesses += w.code.length + w.read.length + w.written.length;
    writes += w.written.length;
  }
  return { accesses, writes };
}

export function compileProgram(t: Trace, speed: number): ReplayProgram {
  const pages = new Set<number>();
  for (const w of t.windows) for (const list of [w.code, w.read, w.written]) for (const p of list) pages.add(p);
  const sorted = [...pages].sort((a, b) => a - b);
  const frameOf = new Map<number, number>();
  sorted.forEach((p, i) => frameOf.set(p, i));
  const { accesses } = accessCounts(t);
  const frames = new Uint32Array(accesses);
  const start = new Float64Array(t.windows.length + 1);
  const readFrom = new Uint32Array(t.windows.length);
  const writeFrom = new Uint32Array(t.windows.length);
  const windowNs = new Float64Array(t.windows.length);
  let k = 0;
  t.windows.forEach((w, r) => {
    start[r] = k;
    for (const p of w.code) frames[k++] = frameOf.get(p) as number;
    readFrom[r] = k - start[r];
    for (const p of w.read) frames[k++] = frameOf.get(p) as number;
    writeFrom[r] = k - start[r];
    for (const p of w.written) frames[k++] = frameOf.get(p) as number;
    windowNs[r] = (w.instructions * 1000) / speed;
  });
  start[t.windows.length] = k;
  return { footprint: sorted.length, windows: t.windows.length, frames, start, readFrom, writeFrom, windowNs, accesses };
}

/** Lays the phase's copies out in `pageCount` pages for `vcpus` vCPUs; throws WorkloadError when they do not fit. */
export function compileTrace(replay: TraceReplay, region: { offset: number; size: number }, pageCount: number, vcpus: number, where: string): CompiledTrace {
  const programs = replay.traces.map((t) => compileProgram(t.trace, t.speed));
  const slot = Math.max(...programs.map((p) => p.footprint));
  const { start, end } = regionPages(region, pageCount);
  const base = Math.ceil(start / vcpus) * vcpus;
  const room = Math.max(0, end - base);
  const perCopy = slot * vcpus;
  const copies = replay.copies === "fill" ? Math.floor(room / perCopy) : replay.copies;
  if (copies < 1 || copies * perCopy > room) {
    const need = Math.max(1, copies) * perCopy;
    throw new WorkloadError(
      `${where}: ${Math.max(1, copies)} cop${copies === 1 ? "y" : "ies"} per vCPU of a ${slot}-page trace on ${vcpus} vCPUs need ${need} pages, ` +
        `the phase's region has ${room} (give the guest more memory, or fewer copies)`,
    );
  }
  return { programs, copies, base, slot, loop: replay.loop };
}

/** The trace position of local step `t` of a pass: window, copy and access index (steps of empty windows: none). */
export function positionOf(prog: ReplayProgram, copies: number, t: number): { window: number; copy: number; index: number } {
  // The last window whose first step is ≤ t: window r begins at step copies * start[r].
  let lo = 0;
  let hi = prog.windows - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (copies * prog.start[mid] <= t) lo = mid;
    else hi = mid - 1;
  }
  const n = prog.start[lo + 1] - prog.start[lo];
  const rem = t - copies * prog.start[lo];
  return { window: lo, copy: Math.floor(rem / n), index: rem % n };
}
