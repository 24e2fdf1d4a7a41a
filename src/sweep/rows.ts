/**
 * A sweep's output: one flat row per run (the run's key, then the report's
 * figures), written as JSONL (with the whole report) and CSV, and a summary
 * table. Nothing here depends on when or where a run ran, so the same grid
 * always gives byte-identical files.
 */
import type { Report } from "../engine/report.js";
import type { Grid, RunKey } from "./grid.js";
import type { PolicyKey } from "./policy.js";

export type Cell = string | number | boolean | null;
export type Row = Record<string, Cell>;

/** vCPU-seconds the guest did not run during the migration, against an unmigrated run of the same span. */
export function lostWorkVcpuS(report: Report, vcpus: number): number {
  // The report's own figure (docs/disruption.md) where it has one.
  if (report.guest) return round3(report.guest.work_lost_vcpu_s);
  return round3(vcpus * (report.total_ms / 1000) * (1 - guestShare(report)));
}

/** Work done during the migration as a share of an unmigrated run's (the report's guest.utilization; 1 without it). */
export function guestShare(report: Report): number {
  return report.guest?.utilization ?? 1;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The row of one run; policy columns the mode does not use are empty. */
export function rowOf(key: RunKey, policyKeys: readonly PolicyKey[], r: Report): Row {
  const row: Row = {
    run: key.index,
    trace: key.trace,
    workload: key.workload,
    mem_bytes: key.mem_bytes,
    vcpus: key.vcpus,
    link: key.link,
    mode: key.mode,
  };
  for (const k of policyKeys) row[k] = key.policy[k] ?? "";
  Object.assign(row, {
    seed: key.seed,
    outcome: r.outcome,
    verified: typeof r.verified === "boolean" ? r.verified : null,
    switchover: r.switchover_reason,
    rounds: r.rounds.length,
    throttle: Number(r.throttle ?? 0),
    downtime_ms: r.downtime_ms,
    total_ms: r.total_ms,
    bytes_sent: r.bytes_sent,
    pages_sent: r.pages_sent,
    pages_zero: r.pages_zero,
    pages_resent: r.pages_resent,
    demand_faults: r.demand_faults,
    fault_p50_us: r.fault_latency_us.p50,
    fault_p99_us: r.fault_latency_us.p99,
    fault_max_us: r.fault_latency_us.max,
    blocktime_ms: r.blocktime_ms,
    utilization: guestShare(r),
    lost_work_vcpu_s: lostWorkVcpuS(r, key.vcpus),
    background_mib_s: r.background_mib_s,
  } satisfies Row);
  return row;
}

/** One JSONL line: the row, and the whole report under "report". */
export function jsonLine(row: Row, report: Report): string {
  return JSON.stringify({ ...row, report });
}

export function csvHeader(row: Row): string {
  return Object.keys(row).map(csvCell).join(",");
}

export function csvLine(row: Row): string {
  return Object.values(row).map(csvCell).join(",");
}

/** RFC 4180: quote a cell holding a comma, quote or line break; double its quotes. */
function csvCell(v: Cell): string {
  const s = v === null ? "" : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

/** The columns that say which run a row is (the summary groups by them, seeds apart). */
function configColumns(grid: Pick<Grid, "policyKeys">): string[] {
  return ["workload", "mem_bytes", "link", "mode", ...grid.policyKeys];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(1));

/** Median (and range when seeds differ) of a figure over the seeds of one configuration. */
function spread(rows: Row[], col: string, scale = 1): string {
  const xs = rows.map((r) => Number(r[col]) / scale);
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? fmt(lo) : `${fmt(median(xs))} (${fmt(lo)}–${fmt(hi)})`;
}

/** A markdown table, one line per configuration (its seeds together), in the rows' order. */
export function summaryTable(grid: Pick<Grid, "policyKeys">, rows: Row[]): string {
  const cols = configColumns(grid);
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const k = JSON.stringify(cols.map((c) => r[c]));
    const g = groups.get(k);
    if (g) g.push(r);
    else groups.set(k, [r]);
  }
  const head = [...cols, "runs", "ok", "downtime_ms", "total_ms", "mib_sent", "fault_p99_us", "lost_work_vcpu_s"];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  for (const g of groups.values()) {
    const ok = g.filter((r) => r.outcome === "completed" && r.verified !== false).length; // null: a grid with check_memory false
    const cells = [
      ...cols.map((c) => (c === "mem_bytes" ? `${Number(g[0][c]) / 1048576} MiB` : String(g[0][c] === "" ? "–" : g[0][c]))),
      String(g.length),
      String(ok),
      spread(g, "downtime_ms"),
      spread(g, "total_ms"),
      spread(g, "bytes_sent", 1048576),
      spread(g, "fault_p99_us"),
      spread(g, "lost_work_vcpu_s"),
    ];
    lines.push(`| ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}
