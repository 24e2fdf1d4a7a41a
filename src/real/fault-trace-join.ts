/**
 * Joins the two agents' fault traces of one session (fault-trace.ts) into
 * each fault's way, cut into the legs where its time can go:
 *
 *   hop      reader thread's read → the JS callback (the destination's loop)
 *   engine   → the request handed to the urgent socket
 *   out      → the request's arrival in the source's JS (wire + the source's loop)
 *   source   → the reply handed to the urgent socket (engine, pread)
 *   back     → the reply's arrival in the destination's JS (wire + its loop)
 *   install  → the install returned
 *   total    read → installed
 *
 * A page the bulk stream brought first has no source legs (its reply, if
 * any, came later); it counts in `total` and is marked so.
 */
import type { DestFaultStamps, LoopTrace, SourceFaultStamps, TraceFile } from "./fault-trace.js";

export const LEGS = ["hop", "engine", "out", "source", "back", "install", "total"] as const;
export type Leg = (typeof LEGS)[number];

export interface JoinedFault {
  page: number;
  read: number;
  channel: "urgent" | "bulk" | null;
  legs: Partial<Record<Leg, number>>;
  /** Loop stalls and GC pauses of either agent that overlap this fault's way: [who, what, at − read µs, µs]. */
  overlaps: [string, string, number, number][];
}

export interface LegStats {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface JoinedTrace {
  session: string;
  faults: JoinedFault[];
  legs: Record<Leg, LegStats>;
  loops: { destination: LoopTrace["delayUs"]; source: LoopTrace["delayUs"] | null };
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function stats(xs: number[]): LegStats {
  const s = [...xs].sort((a, b) => a - b);
  return { count: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s.length === 0 ? NaN : s[s.length - 1] };
}

function overlaps(who: string, loop: LoopTrace, from: number, to: number): [string, string, number, number][] {
  const out: [string, string, number, number][] = [];
  // A stall is stamped where its late turn should have run and lasted `late` µs from there.
  for (const [at, us, wait, busy] of loop.stalls) if (at < to && at + us > from) out.push([who, `stall (CPU wait ${wait ?? "?"}, busy ${busy ?? "?"})`, Math.round(at - from), us]);
  for (const [at, us] of loop.gc) if (at < to && at + us > from) out.push([who, "gc", Math.round(at - from), us]);
  for (const [at, us, type] of loop.long ?? []) if (at < to && at + us > from) out.push([who, type, Math.round(at - from), us]);
  return out;
}

const d = (a: number | null | undefined, b: number | null | undefined): number | undefined => (a == null || b == null ? undefined : Math.round(b - a));

/** One session's faults with both sides' stamps (the source's may be missing: then only the destination's legs). */
export function joinTraces(dest: TraceFile<DestFaultStamps>, source: TraceFile<SourceFaultStamps> | null): JoinedTrace {
  // A page may be requested more than once over a migration; match each destination fault with the source's first arrival after its request.
  const bySrc = new Map<number, SourceFaultStamps[]>();
  for (const f of source?.faults ?? []) {
    const l = bySrc.get(f.page);
    if (l === undefined) bySrc.set(f.page, [f]);
    else l.push(f);
  }
  const faults: JoinedFault[] = [];
  for (const f of dest.faults) {
    if (f.installed === null) continue;
    const s = f.requested === null ? undefined : bySrc.get(f.page)?.find((x) => x.arrived >= (f.requested as number));
    const legs: Partial<Record<Leg, number>> = { hop: d(f.read, f.js), engine: d(f.js, f.requested), install: d(f.arrived, f.installed), total: d(f.read, f.installed) };
    if (f.channel === "urgent" && s !== undefined) {
      legs.out = d(f.requested, s.arrived);
      legs.source = d(s.arrived, s.replied);
      legs.back = d(s.replied, f.arrived);
    }
    for (const k of LEGS) if (legs[k] === undefined) delete legs[k];
    const end = f.installed;
    const ov = [...overlaps("destination", dest.loop, f.read, end), ...(source === null ? [] : overlaps("source", source.loop, f.read, end))];
    faults.push({ page: f.page, read: f.read, channel: f.channel, legs, overlaps: ov });
  }
  const legs = {} as Record<Leg, LegStats>;
  for (const k of LEGS) legs[k] = stats(faults.map((f) => f.legs[k]).filter((x): x is number => x !== undefined));
  return { session: dest.session, faults, legs, loops: { destination: dest.loop.delayUs, source: source?.loop.delayUs ?? null } };
}
