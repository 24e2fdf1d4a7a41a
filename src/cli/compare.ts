/** `ppsim compare --trace workload.json`: the modes on one workload and link, side by side. */
import { fmtBytes, fmtCount, fmtDuration, fmtPercent, fmtUs } from "../../tui/format.js";
import { MODES, type Mode } from "../engine/messages.js";
import type { Report } from "../engine/report.js";
import { formatLink } from "../sim/link.js";
import { recordSimulation, writeHtmlReport, type RunRecording } from "../html-report/index.js";
import { Simulation } from "../sim/simulation.js";
import { UsageError } from "./errors.js";
import { runShowingProgress, stderrProgress, type StderrProgress } from "./progress.js";
import { parseSimFlags, type SimFlags } from "./sim-args.js";
import { simConfig, workloadFor, workloadSpec } from "./sim-command.js";
import { compareVariants, type VariantFlags } from "./compare-variants.js";

export const COMPARE_USAGE = `usage: ppsim compare --trace FILE [--mode MODE[,MODE…]] [--huge-policy P,…] [--async-faults on,off] [simulation flags] [--json]

Simulates the workload once per mode (default: precopy, postcopy and hybrid)
on the same link, seed and policy, and prints the figures side by side (or,
with --json, the reports as a JSON array). Progress goes to stderr. Exit
status: 0 when every mode completed and verified, 1 otherwise, 2 for bad input.
Every flag of \`ppsim --trace\` applies (ppsim --help lists them), --report FILE.html
too (the modes overlaid).

  --huge-policy whole,split,none   each mode once per huge-page policy (the workload's huge_pages; none: base pages only)
  --async-faults on,off            each mode with and without async faults (a workload with tasks)

  ppsim compare --trace FILE --real (--demo | --peer HOST:PORT) [--mode MODE] [--link …] [--steps N]
      the simulator beside a real run of one mode (same workload, options, seed): each figure
      simulated, real and the relative error; give --link as the real link is.`;

const ROWS: [string, (r: Report) => string][] = [
  ["outcome", (r) => r.outcome + (r.verified === false ? " (NOT verified)" : "")],
  ["switchover", (r) => r.switchover_reason],
  ["pre-copy rounds", (r) => fmtCount(r.rounds.length)],
  ["downtime", (r) => fmtDuration(r.downtime_ms)],
  ["total time", (r) => fmtDuration(r.total_ms)],
  ["bytes on the wire", (r) => fmtBytes(r.bytes_sent)],
  ["pages sent", (r) => fmtCount(r.pages_sent)],
  ["pages zero", (r) => fmtCount(r.pages_zero)],
  ["pages re-sent", (r) => fmtCount(r.pages_resent)],
  ["demand faults", (r) => fmtCount(r.demand_faults)],
  ["fault latency p50", (r) => (r.demand_faults > 0 ? fmtUs(r.fault_latency_us.p50) : "–")],
  ["fault latency p99", (r) => (r.demand_faults > 0 ? fmtUs(r.fault_latency_us.p99) : "–")],
  ["vCPU blocktime", (r) => fmtDuration(r.blocktime_ms)],
  ["guest work lost", (r) => (r.guest ? `${r.guest.work_lost_vcpu_s.toFixed(2)} vCPU-s` : "–")],
  ["guest utilization", (r) => (r.guest ? fmtPercent(r.guest.utilization) : "–")],
  ["longest guest stall", (r) => (r.guest ? fmtDuration(r.guest.longest_stall_ms) : "–")],
  ["guest MMU 10 ms / 100 ms / 1 s", (r) => (r.guest ? [10, 100, 1000].map((w) => pct(mmuAt(r, w))).join(" / ") : "–")],
  ["time to responsiveness", (r) => (r.guest ? fmtDuration(r.guest.time_to_responsive_ms) : "–")],
  ["auto-converge throttle", (r) => fmtPercent(r.throttle, 0)],
  ["background push", (r) => `${r.background_mib_s.toFixed(1)} MiB/s`],
];

function pct(x: number | null): string {
  return x === null ? "–" : fmtPercent(x);
}

function mmuAt(r: Report, w: number): number | null {
  return r.guest?.mmu.find((m) => m.window_ms === w)?.min_utilization ?? null;
}

/** --mode for compare: one mode or a comma-separated list; default all three. */
export function compareModes(text: string | undefined): Mode[] {
  if (text === undefined) return [...MODES];
  const modes = text.split(",").map((m) => m.trim());
  for (const m of modes) {
    if (!(MODES as readonly string[]).includes(m)) throw new UsageError(`--mode must be one or more of ${MODES.join(", ")}, comma-separated, got "${m}"`);
  }
  return [...new Set(modes)] as Mode[];
}

/** Every run compare makes: each variant (compare-variants.ts) in each mode. */
function compareRuns(flags: SimFlags & VariantFlags) {
  const choices = parseSimFlags({ ...flags, mode: undefined });
  const workload = workloadFor(choices);
  const spec = workloadSpec(choices.trace);
  return compareVariants(flags).flatMap((v) => {
    const w = v.workload(workload);
    return compareModes(flags.mode).map((mode) => ({ mode, label: v.label === "" ? mode : `${mode}, ${v.label}`, config: simConfig(choices, w, mode), spec: v.spec(spec) }));
  });
}

export function compareReports(flags: SimFlags & VariantFlags, progress?: StderrProgress): Report[] {
  const runs = compareRuns(flags);
  return runs.map((run, i) => {
    const name = run.config.workload.name;
    progress?.show(`ppsim compare: ${name}, ${run.label} (${i + 1}/${runs.length})…`, true);
    const sim = new Simulation(run.config);
    const done = progress ? runShowingProgress(sim, progress, `ppsim compare: ${run.label} (${i + 1}/${runs.length})`) : sim.runToEnd();
    const r: Report = { ...done, workload_spec: run.spec };
    progress?.show(`ppsim compare: ${name}, ${run.label} (${i + 1}/${runs.length}): ${r.outcome}, total ${fmtDuration(r.total_ms)}`);
    return r;
  });
}

/** The modes, each recorded for an HTML report (snapshots sampled as it runs). */
export function compareRecordings(flags: SimFlags & VariantFlags): RunRecording[] {
  return compareRuns(flags).map((run) => {
    const rec = recordSimulation(new Simulation(run.config), run.mode);
    return { ...rec, report: { ...rec.report, workload_spec: run.spec } };
  });
}

/** A column's head: the mode, and the variant a report's workload_spec says (huge-page policy, async faults) when compare ran several. */
function columnHead(r: Report, all: readonly Report[]): string {
  const huge = (x: Report) => {
    const s = x.workload_spec as { huge_pages?: { policy?: string } } | null | undefined;
    return s?.huge_pages === undefined ? "base pages" : `${s.huge_pages.policy ?? "whole"} huge pages`;
  };
  const async = (x: Report) => {
    const t = (x.workload_spec as { tasks?: { async_faults?: boolean } } | null | undefined)?.tasks;
    return t === undefined ? "" : `async ${t.async_faults === false ? "off" : "on"}`;
  };
  const parts: string[] = [r.mode];
  if (new Set(all.map(huge)).size > 1) parts.push(huge(r));
  if (new Set(all.map(async)).size > 1) parts.push(async(r));
  return parts.join(", ");
}

/** A markdown table, columns padded so that it reads aligned as text too; figures right-aligned. */
export function compareTable(reports: Report[]): string {
  const link = reports[0].link ? reports[0].link.text : "";
  const head = [`${reports[0].workload} @ ${link}`, ...reports.map((r) => columnHead(r, reports))];
  const body = ROWS.map(([name, f]) => [name, ...reports.map(f)]);
  const widths = head.map((h, c) => Math.max(3, h.length, ...body.map((row) => row[c].length)));
  const line = (cells: string[]) => `| ${cells.map((x, c) => (c === 0 ? x.padEnd(widths[c]) : x.padStart(widths[c]))).join(" | ")} |`;
  const rule = `| ${widths.map((w, c) => (c === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`;
  return [line(head), rule, ...body.map(line)].join("\n");
}

/** Exit status: 0 only when every mode completed and verified. */
export function compareExitCode(reports: readonly Report[]): number {
  return reports.every((r) => r.outcome === "completed" && r.verified === true) ? 0 : 1;
}

export function runCompare(flags: SimFlags & VariantFlags & { help?: boolean }, out: (line: string) => void): number {
  if (flags.help) {
    out(COMPARE_USAGE);
    return 0;
  }
  let reports: Report[];
  if (flags.report !== undefined) {
    const runs = compareRecordings(flags);
    reports = runs.map((r) => r.report);
    writeHtmlReport(flags.report, `ppsim compare: ${reports[0].workload} @ ${reports[0].link?.text ?? ""}`, runs);
  } else {
    const progress = stderrProgress(true);
    reports = compareReports(flags, progress);
    progress.end();
  }
  if (flags.json) out(JSON.stringify(reports, null, 2));
  else out(compareTable(reports));
  if (flags.report !== undefined && !flags.json) out(`HTML report: ${flags.report}`);
  return compareExitCode(reports);
}

export { formatLink };
