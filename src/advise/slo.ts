/**
 * Service-level objectives for a migration, e.g.
 * "max_stall<=50ms, total<=30s, downtime<=300ms", and the report figures
 * they are checked against. FIGURES is the one table of what an objective may
 * name: a new report figure is one entry here.
 */
import type { Report } from "../engine/report.js";
import { parseByteSize } from "../workload/size.js";
import { guestShare, lostWorkVcpuS } from "../sweep/rows.js";

export type Kind = "duration" | "size" | "share";

export interface FigureValue {
  /** ms for a duration, bytes for a size, 0..1 for a share. */
  value: number;
  /** Set when the report lacks the figure itself: what was used in its place. */
  standIn?: string;
}

export interface Figure {
  key: string;
  kind: Kind;
  /** For --help and the table's header. */
  what: string;
  of(report: Report, vcpus: number): FigureValue;
}

/**
 * The longest time one vCPU could not run. Until the report carries it
 * (issue 10 adds it as max_stall_ms), the stand-in is the longest pause the
 * report does show: the downtime (every vCPU stopped) or the slowest demand
 * fault (its first vCPU waits the whole service time). It is a lower bound:
 * back-to-back faults of one vCPU, or a fault right after resume, stall it
 * longer in one piece.
 */
function maxStall(r: Report): FigureValue {
  const own = (r as Report & { max_stall_ms?: unknown }).max_stall_ms;
  if (typeof own === "number") return { value: own };
  return { value: Math.max(r.downtime_ms, r.fault_latency_us.max / 1000), standIn: "max(downtime_ms, fault_latency_us.max) — a lower bound: back-to-back faults of one vCPU count apart —" };
}

export const FIGURES: readonly Figure[] = [
  { key: "max_stall", kind: "duration", what: "longest vCPU stall", of: maxStall },
  { key: "downtime", kind: "duration", what: "downtime (source paused → destination running)", of: (r) => ({ value: r.downtime_ms }) },
  { key: "total", kind: "duration", what: "total migration time", of: (r) => ({ value: r.total_ms }) },
  { key: "blocktime", kind: "duration", what: "vCPU time stalled on missing pages, summed", of: (r) => ({ value: r.blocktime_ms }) },
  { key: "fault_p50", kind: "duration", what: "demand fault service time, median", of: (r) => ({ value: r.fault_latency_us.p50 / 1000 }) },
  { key: "fault_p99", kind: "duration", what: "demand fault service time, 99th percentile", of: (r) => ({ value: r.fault_latency_us.p99 / 1000 }) },
  { key: "lost_work", kind: "duration", what: "guest work lost, vCPU-seconds against an unmigrated run", of: (r, vcpus) => ({ value: lostWorkVcpuS(r, vcpus) * 1000 }) },
  { key: "bytes", kind: "size", what: "bytes on the wire", of: (r) => ({ value: r.bytes_sent }) },
  { key: "utilization", kind: "share", what: "guest work done during migration, share of an unmigrated run's (the report's guest.utilization)", of: (r) => ({ value: guestShare(r) }) },
];

export type Op = "<=" | "<" | ">=" | ">";

export interface Objective {
  figure: Figure;
  op: Op;
  /** In the figure's unit (ms, bytes, share). */
  limit: number;
  /** As written, for messages: "total<=30s". */
  text: string;
}

export class SloError extends Error {
  override name = "SloError";
  readonly userFacing = true;
}

const EXAMPLE = `"max_stall<=50ms, total<=30s, downtime<=300ms"`;
const KIND_EXAMPLE: Record<Kind, string> = { duration: "30s, 250ms, 800us or 2min", size: "2GiB or 500MB", share: "0.9 or 90%" };

function parseValue(kind: Kind, text: string): number | null {
  if (kind === "duration") {
    const m = /^(\d+(?:\.\d+)?)\s*(us|µs|ms|s|min)$/.exec(text);
    if (!m) return null;
    return Number(m[1]) * { us: 0.001, µs: 0.001, ms: 1, s: 1000, min: 60000 }[m[2] as "us"];
  }
  if (kind === "size") {
    const b = parseByteSize(text);
    return typeof b === "number" ? b : null;
  }
  const m = /^(\d+(?:\.\d+)?)\s*(%?)$/.exec(text);
  if (!m) return null;
  const share = Number(m[1]) / (m[2] ? 100 : 1);
  return share <= 1 ? share : null;
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return d[b.length];
}

/** Parses "figure<=value, …"; every mistake is a one-line SloError that names the clause. */
export function parseSlo(text: string): Objective[] {
  const clauses = text.split(",").map((c) => c.trim()).filter((c) => c !== "");
  if (clauses.length === 0) throw new SloError(`--slo is empty: give objectives like ${EXAMPLE}`);
  if (clauses.length > 32) throw new SloError(`--slo has ${clauses.length} objectives; at most 32`);
  const seen = new Set<string>();
  return clauses.map((clause) => {
    const m = /^([A-Za-z_0-9]+)\s*(<=|>=|<|>|=)\s*(.*)$/.exec(clause);
    if (!m) throw new SloError(`--slo: "${clause}" must be FIGURE<=VALUE or FIGURE>=VALUE, e.g. ${EXAMPLE}`);
    const [, key, op, valueText] = m;
    const figure = FIGURES.find((f) => f.key === key.toLowerCase());
    if (!figure) {
      if (key.toLowerCase() === "guest_progress") throw new SloError(`--slo: guest_progress is gone (it measured recent speed, which ranked the modes wrongly); use utilization (work done during migration, share of unmigrated) or lost_work`);
      const near = FIGURES.filter((f) => distance(f.key, key.toLowerCase()) <= 2).map((f) => f.key);
      throw new SloError(`--slo: unknown figure "${key}"${near.length ? ` (did you mean ${near.join(" or ")}?)` : ""}; known: ${FIGURES.map((f) => f.key).join(", ")}`);
    }
    if (op === "=") throw new SloError(`--slo: "${clause}": an objective is a bound, use <= or >= (e.g. ${figure.key}<=${valueText})`);
    const limit = parseValue(figure.kind, valueText.trim());
    if (limit === null) throw new SloError(`--slo: "${clause}": ${figure.key} is a ${figure.kind}, expected a value like ${KIND_EXAMPLE[figure.kind]}, got "${valueText.trim()}"`);
    const side = `${figure.key}${op[0]}`;
    if (seen.has(side)) throw new SloError(`--slo: ${figure.key} bounded ${op[0] === "<" ? "above" : "below"} twice`);
    seen.add(side);
    return { figure, op: op as Op, limit, text: `${figure.key}${op}${valueText.trim()}` };
  });
}

export function meets(o: Objective, value: number): boolean {
  switch (o.op) {
    case "<=":
      return value <= o.limit;
    case "<":
      return value < o.limit;
    case ">=":
      return value >= o.limit;
    case ">":
      return value > o.limit;
  }
}

/** How far a value misses its objective, relative to the bound (0 when met): how "close" a candidate is. */
export function miss(o: Objective, value: number): number {
  if (meets(o, value)) return 0;
  const scale = Math.max(Math.abs(o.limit), 1e-9);
  return Math.max(Math.abs(value - o.limit) / scale, 1e-9);
}

/** A figure's value for people: "56.2 ms", "1.02 GiB", "47 %". */
export function formatValue(kind: Kind, v: number): string {
  if (kind === "share") return `${(v * 100).toFixed(1)} %`;
  if (kind === "size") return v >= 1024 ** 3 ? `${(v / 1024 ** 3).toFixed(2)} GiB` : `${(v / 1048576).toFixed(1)} MiB`;
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v.toFixed(v < 10 ? 2 : 1)} ms`;
}
