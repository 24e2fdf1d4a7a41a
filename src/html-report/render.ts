/**
 * One self-contained HTML file for one or more runs: Chart.js and the data
 * inlined, so it opens offline. The chart kinds are CHART_KINDS; a chart with
 * nothing to draw says so instead.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { Report } from "../engine/report.js";
import { CLIENT_SCRIPT } from "./client.js";
import type { RunRecording } from "./recording.js";

export const CHART_KINDS = ["presence", "throughput", "rounds", "faults", "vcpus", "mmu"] as const;

const TITLES: Record<(typeof CHART_KINDS)[number], string> = {
  presence: "Pages present at the destination, by how they came",
  throughput: "Throughput per channel",
  rounds: "Pre-copy rounds: pages sent and dirty rate",
  faults: "Fault latency",
  vcpus: "Guest utilization per vCPU over time (stalls)",
  mmu: "Minimum guest utilization (MMU) by window size",
};

let chartJs: string | null = null;

/** Chart.js's UMD build, read once from the installed package. */
function chartLibrary(): string {
  if (chartJs === null) {
    const main = createRequire(import.meta.url).resolve("chart.js");
    chartJs = readFileSync(join(dirname(main), "chart.umd.min.js"), "utf8");
  }
  return chartJs;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** JSON that cannot close the script element it sits in. */
function scriptJson(x: unknown): string {
  return JSON.stringify(x).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029");
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? "–" : `${(x * 100).toFixed(1)} %`);
const mmuAt = (r: Report, w: number) => r.guest?.mmu.find((m) => m.window_ms === w)?.min_utilization;

const SUMMARY: [string, (r: Report) => string][] = [
  ["outcome", (r) => `${r.outcome}${r.verified === true ? ", verified" : r.verified === false ? ", NOT verified" : ""}`],
  ["total time", (r) => `${r.total_ms} ms`],
  ["downtime", (r) => `${r.downtime_ms} ms`],
  ["pre-copy rounds", (r) => String(r.rounds.length)],
  ["MiB on the wire", (r) => (r.bytes_sent / 1048576).toFixed(1)],
  ["demand faults", (r) => String(r.demand_faults)],
  ["fault latency p50 / p99", (r) => `${r.fault_latency_us.p50} / ${r.fault_latency_us.p99} µs`],
  ["guest work lost", (r) => (r.guest ? `${r.guest.work_lost_vcpu_s} vCPU-s` : "–")],
  ["guest utilization", (r) => pct(r.guest?.utilization)],
  ["longest stall", (r) => (r.guest ? `${r.guest.longest_stall_ms} ms` : "–")],
  ["MMU 10 ms / 100 ms / 1 s", (r) => [10, 100, 1000].map((w) => pct(mmuAt(r, w))).join(" / ")],
  ["time to responsiveness", (r) => (r.guest ? `${r.guest.time_to_responsive_ms} ms` : "–")],
  ["mean vCPU fault wait (QEMU postcopy-latency)", (r) => (r.guest?.faults ? `${r.guest.faults.postcopy_latency_us} µs` : "–")],
];

function summaryTable(runs: RunRecording[]): string {
  const head = `<tr><th></th>${runs.map((r) => `<th>${escapeHtml(r.label)}</th>`).join("")}</tr>`;
  const body = SUMMARY.map(([name, f]) => `<tr><td>${escapeHtml(name)}</td>${runs.map((r) => `<td>${escapeHtml(f(r.report))}</td>`).join("")}</tr>`);
  return `<table>${head}${body.join("")}</table>`;
}

export function renderHtml(title: string, runs: RunRecording[]): string {
  if (runs.length === 0) throw new Error("an HTML report needs at least one run");
  const charts = CHART_KINDS.map((k) => `<section><h2>${escapeHtml(TITLES[k])}</h2><canvas data-chart="${k}" width="900" height="320"></canvas></section>`).join("\n");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-bottom: 1em; } td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
section { margin: 1.5em 0; } h2 { font-size: 1.05em; margin: 0 0 .4em; } .empty { color: #777; font-style: italic; }
</style></head><body>
<h1>${escapeHtml(title)}</h1>
${summaryTable(runs)}
${charts}
<script type="application/json" id="ppsim-data">${scriptJson({ runs })}</script>
<script>${chartLibrary()}</script>
<script>${CLIENT_SCRIPT}</script>
</body></html>
`;
}
