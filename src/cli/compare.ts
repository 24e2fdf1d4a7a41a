/** `ppsim compare --trace workload.json`: the three modes on one workload and link, side by side. */
import { MODES } from "../engine/messages.js";
import type { Report } from "../engine/report.js";
import { simulate } from "../sim/simulation.js";
import { formatLink } from "../sim/link.js";
import { parseSimFlags, type SimFlags } from "./sim-args.js";
import { simConfig, workloadFor } from "./sim-command.js";

const ROWS: [string, (r: Report) => string][] = [
  ["outcome", (r) => r.outcome + (r.verified === false ? " (NOT verified)" : "")],
  ["switchover", (r) => r.switchover_reason],
  ["pre-copy rounds", (r) => String(r.rounds.length)],
  ["downtime", (r) => ms(r.downtime_ms)],
  ["total time", (r) => ms(r.total_ms)],
  ["bytes on the wire", (r) => mib(r.bytes_sent)],
  ["pages sent / zero / re-sent", (r) => `${r.pages_sent} / ${r.pages_zero} / ${r.pages_resent}`],
  ["demand faults", (r) => String(r.demand_faults)],
  ["fault latency p50 / p99", (r) => `${us(r.fault_latency_us.p50)} / ${us(r.fault_latency_us.p99)}`],
  ["vCPU blocktime", (r) => ms(r.blocktime_ms)],
  ["guest progress", (r) => `${(r.guest_progress * 100).toFixed(1)} %`],
  ["auto-converge throttle", (r) => `${Math.round(Number(r.throttle ?? 0) * 100)} %`],
  ["background", (r) => `${r.background_mib_s.toFixed(1)} MiB/s`],
];

const ms = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${x.toFixed(1)} ms`);
const us = (x: number) => (x >= 1000 ? `${(x / 1000).toFixed(2)} ms` : `${Math.round(x)} µs`);
const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;

export function compareReports(flags: SimFlags): Report[] {
  const choices = parseSimFlags(flags);
  const workload = workloadFor(choices);
  return MODES.map((mode) => simulate(simConfig(choices, workload, mode)));
}

/** A markdown table: one row per figure, one column per mode. */
export function compareTable(reports: Report[]): string {
  const head = `| ${reports[0].workload} @ ${String((reports[0].link as { text?: string } | undefined)?.text ?? "")} | ${reports.map((r) => r.mode).join(" | ")} |`;
  const rule = `| --- | ${reports.map(() => "---").join(" | ")} |`;
  const body = ROWS.map(([name, f]) => `| ${name} | ${reports.map(f).join(" | ")} |`);
  return [head, rule, ...body].join("\n");
}

export function runCompare(flags: SimFlags, out: (line: string) => void): number {
  const reports = compareReports(flags);
  if (flags.json) out(JSON.stringify(reports, null, 2));
  else out(compareTable(reports));
  return reports.every((r) => r.verified !== false) ? 0 : 1;
}

export { formatLink };
