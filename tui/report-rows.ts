/**
 * A Report as [label, value] rows of text. Labels are its JSON keys without
 * their unit suffix (the value carries its own unit: "blocktime 5m 03s", not
 * "blocktime_ms 5m 03s"); nested objects get a summary of their own.
 */
import type { GuestDisruption } from "../src/disruption/derive.js";
import { DEFAULT_OPTIONS, type MigrationOptions } from "../src/engine/options.js";
import type { HashReport, LinkReport, OutageReport, Percentiles, PrecopyReport, Report, RoundReport, SimStats } from "../src/engine/report.js";
import { fmtBytes, fmtCount, fmtDuration, fmtNumber, fmtPercent, fmtRate, fmtUs } from "./format.js";

export type Row = [key: string, value: string];

/** Values are cut to this many cells (the frame may ask for fewer). */
const MAX_VALUE = 60;
const UNIT_SUFFIX = /_(ms|us|bytes_s|bytes|mib_s)$/;

/** "blocktime_ms" → "blocktime"; "mem_bytes" → "memory"; keys without a unit stay. */
export function labelOf(key: string): string {
  return key === "mem_bytes" ? "memory" : key.replace(UNIT_SUFFIX, "");
}

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

/** Pages per round, "262,144 › 9,120 › 880", cut to fit (the newest rounds kept). */
export function fmtRoundPages(rounds: readonly RoundReport[], max = MAX_VALUE): string {
  const all = rounds.map((r) => fmtCount(r.pages)).join(" › ");
  return all.length > max ? `…${all.slice(all.length - max + 1)}` : all;
}

function cut(s: string): string {
  return s.length > MAX_VALUE ? `${s.slice(0, MAX_VALUE - 1)}…` : s;
}

export function fmtPrecopy(p: PrecopyReport): string {
  return `${fmtCount(p.remaining_pages)} pages dirty · ${fmtRate(p.dirty_rate_bytes_s)} vs ${fmtRate(p.bandwidth_bytes_s)}`;
}

function fmtExpectedDowntime(p: PrecopyReport): string {
  return `${fmtDuration(p.expected_downtime_ms)} (limit ${fmtDuration(p.downtime_limit_ms)})`;
}

function fmtSim(s: SimStats): string {
  return `${fmtCount(s.events)} events · ${fmtCount(s.guest_accesses)} accesses · ${fmtCount(s.messages_lost)} lost`;
}

function fmtOutages(o: readonly OutageReport[]): string {
  if (o.length === 0) return "none";
  return cut(o.map((x) => `${fmtDuration(x.atMs)} for ${fmtDuration(x.durationMs)}`).join(", "));
}

/** The options that differ from the defaults (mode is a row of its own). */
export function fmtOptions(o: MigrationOptions): string {
  const changed = (Object.keys(DEFAULT_OPTIONS) as (keyof MigrationOptions)[]).filter((k) => k !== "mode" && o[k] !== DEFAULT_OPTIONS[k]);
  if (changed.length === 0) return "defaults";
  return cut(changed.map((k) => `${k} ${typeof o[k] === "number" ? fmtNumber(o[k]) : String(o[k])}`).join(" · "));
}

/** A value by its key's convention (_ms, _bytes, _us, ...) or its type. */
export function fmtValue(key: string, v: unknown): string {
  if (typeof v === "number") {
    if (key.endsWith("_ms")) return fmtDuration(v);
    if (key.endsWith("_bytes_s")) return fmtRate(v);
    if (key.endsWith("_bytes") || key === "page_size" || key === "bytes_sent") return fmtBytes(v);
    if (key.endsWith("_mib_s")) return `${fmtNumber(v)} MiB/s`;
    if (key.endsWith("_us")) return fmtUs(v);
    if (key === "throttle") return fmtPercent(v);
    if (key.endsWith("_steps_s")) return `${fmtCount(v)} steps/s`;
    return fmtNumber(v);
  }
  if (typeof v === "string") return cut(v.length === 0 ? "–" : v);
  if (v === null || v === undefined) return "–";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (isPercentiles(v)) return fmtLatency(v);
  if (Array.isArray(v)) return v.length === 0 ? "none" : cut(v.map((x) => fmtValue("", x)).join(", "));
  if (typeof v === "object") {
    return cut(
      Object.entries(v as Record<string, unknown>)
        .map(([k, x]) => `${labelOf(k)} ${fmtValue(k, x)}`)
        .join(" · "),
    );
  }
  return cut(String(v));
}

/** Rows for the keys that hold objects; null = the generic formatting. */
function special(key: string, r: Report, max: number): Row[] | null {
  switch (key) {
    case "rounds":
      return r.rounds.length > 1 ? [["rounds", fmtRounds(r.rounds)], ["round pages", fmtRoundPages(r.rounds, max)]] : [["rounds", fmtRounds(r.rounds)]];
    case "fault_latency_us":
      return [["fault_latency", r.demand_faults > 0 ? fmtLatency(r.fault_latency_us) : "– (no demand faults)"]];
    case "precopy":
      return r.precopy ? [["precopy", fmtPrecopy(r.precopy)], ["expected downtime", fmtExpectedDowntime(r.precopy)]] : [];
    case "link":
      return r.link ? [["link", (r.link as LinkReport).text]] : [];
    case "real_link":
      return r.real_link ? [["link", r.real_link.text]] : [];
    case "real_source_memory": {
      // The samples are for charts and the JSON; the summary keeps the peak.
      const m = r.real_source_memory;
      return m ? [["source memory", `peak ${fmtNumber(m.peak_mib)} MiB · ${fmtCount(m.punched_pages)} pages freed as they left`]] : [];
    }
    case "guest":
      return guestRows(r.guest);
    case "sim":
      return r.sim ? [["sim", fmtSim(r.sim)]] : [];
    case "outages":
      return r.outages ? [["outages", fmtOutages(r.outages)]] : [];
    case "options":
      return r.options ? [["options", fmtOptions(r.options)]] : [];
    case "workload_spec":
      return []; // the workload file itself: for `ppsim rerun`, not for reading
    case "hash": {
      const h = r.hash as HashReport | null | undefined;
      if (!h) return [];
      return [["hash", h.destination === h.unmigrated ? `${h.destination} (= unmigrated)` : `${h.destination} ≠ ${h.unmigrated ?? "?"}`]];
    }
    default:
      return null;
  }
}

/** `maxValue`: the cells a value may take (a narrow frame asks for fewer; longer ones are cut with "…"). */
export function reportRows(r: Report, maxValue = MAX_VALUE): Row[] {
  const rows: Row[] = [];
  for (const [key, v] of Object.entries(r)) {
    const own = special(key, r, maxValue);
    if (own !== null) rows.push(...own);
    else rows.push([labelOf(key), fmtValue(key, v)]);
  }
  return rows.map(([k, v]) => [k, v.length > maxValue ? `${v.slice(0, maxValue - 1)}…` : v]);
}

/** The guest's disruption figures (docs/disruption.md) in a few rows. */
export function guestRows(g: GuestDisruption | null): Row[] {
  if (g === null) return [["guest", "–"]];
  const mmu = g.mmu.filter((m) => [10, 100, 1000, 10000].includes(m.window_ms) && m.min_utilization !== null);
  const rows: Row[] = [
    ["guest", `${fmtPercent(g.utilization)} of unmigrated work · lost ${fmtNumber(g.work_lost_vcpu_s)} vCPU-s`],
    ["guest stalls", `${fmtCount(g.stalls.count)} · longest ${fmtDuration(g.longest_stall_ms)} · p99 ${fmtDuration(g.stalls.p99_ms)}`],
    ["guest MMU", mmu.map((m) => `${fmtDuration(m.window_ms)} ${fmtPercent(m.min_utilization as number, 0)}`).join(" · ")],
    ["guest responsive", `after ${fmtDuration(g.time_to_responsive_ms)}`],
  ];
  if (g.faults !== null && g.faults.vcpu_faults > 0) rows.push(["postcopy latency", `${fmtUs(g.faults.postcopy_latency_us)} mean over ${fmtCount(g.faults.vcpu_faults)} vCPU waits`]);
  return rows;
}
