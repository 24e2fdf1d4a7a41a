/** A Report as [key, value] rows of text: its JSON keys, values with units. */
import type { Percentiles, Report, RoundReport } from "../src/engine/report.js";
import { fmtBytes, fmtCount, fmtDuration, fmtNumber, fmtPercent, fmtUs } from "./format.js";

export type Row = [key: string, value: string];

const MAX_VALUE = 60;

function isPercentiles(v: unknown): v is Percentiles {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Record<string, unknown>;
  return typeof o.p50 === "number" && typeof o.p99 === "number" && typeof o.max === "number";
}

export function fmtLatency(p: Percentiles): string {
  return `p50 ${fmtUs(p.p50)} · p99 ${fmtUs(p.p99)} · max ${fmtUs(p.max)}`;
}

function fmtRounds(rounds: readonly RoundReport[]): string {
  if (rounds.length === 0) return "0";
  const bytes = rounds.reduce((a, r) => a + r.bytes, 0);
  const ms = rounds.reduce((a, r) => a + r.ms, 0);
  return `${rounds.length} · ${fmtBytes(bytes)} · ${fmtDuration(ms)}`;
}

/** Pages per round, "262,144 › 9,120 › 880", cut to fit. */
export function fmtRoundPages(rounds: readonly RoundReport[]): string {
  return cut(rounds.map((r) => fmtCount(r.pages)).join(" › "));
}

function cut(s: string): string {
  return s.length > MAX_VALUE ? `${s.slice(0, MAX_VALUE - 1)}…` : s;
}

/** A value by its key's convention (_ms, _bytes, _us, ...) or its type. */
export function fmtValue(key: string, v: unknown): string {
  if (typeof v === "number") {
    if (key.endsWith("_ms")) return fmtDuration(v);
    if (key.endsWith("_bytes") || key === "page_size" || key === "bytes_sent") return fmtBytes(v);
    if (key.endsWith("_mib_s")) return `${fmtNumber(v)} MiB/s`;
    if (key.endsWith("_us")) return fmtUs(v);
    if (key === "guest_progress" || key === "throttle") return fmtPercent(v);
    return fmtNumber(v);
  }
  if (typeof v === "string") return cut(v);
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (isPercentiles(v)) return fmtLatency(v);
  return cut(JSON.stringify(v));
}

export function reportRows(r: Report): Row[] {
  const rows: Row[] = [];
  for (const [key, v] of Object.entries(r)) {
    if (key === "rounds") {
      rows.push([key, fmtRounds(r.rounds)]);
      if (r.rounds.length > 1) rows.push(["round pages", fmtRoundPages(r.rounds)]);
    } else rows.push([key, fmtValue(key, v)]);
  }
  return rows;
}
