/**
 * The per-thread CPU account of real runs (report.real_cpu_threads,
 * src/real/thread-cpu.ts) summed per host process and role, for
 * bench/real-postcopy.ts: over the background (the source from just before
 * its PAUSE, the destination from its guest's RESUME reply, both to the
 * end) and over the whole migration (each agent's first mark to its end).
 */
import type { Report } from "../src/engine/report.js";
import { cpuBetween, spanMs, type RoleCpu } from "../src/real/thread-cpu-summary.js";
import { median } from "./table.js";

const GiB = 2 ** 30;

/** One run's CPU per process and role, ms, over the background and over the whole migration; the spans, ms. */
export interface RunCpu {
  background: RoleCpu[];
  whole: RoleCpu[];
  span_ms: { source_background: number | null; destination_background: number | null; source_whole: number | null };
}

/** Null when the run has no account (not a real run, or the destination's did not come). */
export function runCpu(r: Report): RunCpu | null {
  const c = r.real_cpu_threads;
  if (c == null) return null;
  const d = c.destination;
  const bg = [...(cpuBetween(c.source, "pause", "end") ?? []), ...(d === null ? [] : (cpuBetween(d, "resumed", "end") ?? []))];
  const whole = [...(cpuBetween(c.source, "start", "end") ?? []), ...(d === null ? [] : (cpuBetween(d, "start", "end") ?? []))];
  return {
    background: bg,
    whole,
    span_ms: { source_background: spanMs(c.source, "pause", "end"), destination_background: d === null ? null : spanMs(d, "resumed", "end"), source_whole: spanMs(c.source, "start", "end") },
  };
}

const ORDER = ["loop", "bulk", "lane", "fault reader", "puncher", "node helpers", "guest control", "vcpu"];
const PROCS = ["source agent", "source guest", "destination agent", "destination guest"];

function key(g: RoleCpu): string {
  return `${g.process} / ${g.role}`;
}

function rank(k: string): number {
  const [p, r] = k.split(" / ");
  const pi = PROCS.indexOf(p);
  const ri = ORDER.indexOf(r);
  return (pi < 0 ? PROCS.length : pi) * 100 + (ri < 0 ? ORDER.length : ri);
}

const fmt = (x: number | null | undefined, d = 0): string => (x == null || !Number.isFinite(x) ? "-" : x.toFixed(d));

/**
 * A markdown table: per process and role, the median over runs of the
 * background's CPU ms (and per GiB of guest memory), its run-queue wait, and
 * the whole migration's CPU ms; the last lines sum them and divide by the
 * background's span (cores busy).
 */
export function cpuTable(label: string, memBytes: number, runs: (RunCpu | null)[]): string {
  const ok = runs.filter((r): r is RunCpu => r !== null);
  if (ok.length === 0) return `${label}: no per-thread CPU account in these runs`;
  const gib = memBytes / GiB;
  const keys = new Set<string>();
  for (const r of ok) for (const g of [...r.background, ...r.whole]) keys.add(key(g));
  const pick = (r: RunCpu, which: "background" | "whole", k: string): RoleCpu | undefined => r[which].find((g) => key(g) === k);
  const lines = [
    `${label}: CPU per process and thread role, median of ${ok.length} run(s). Background: source from just before its PAUSE, destination from its guest's RESUME reply, both to the end (spans ms, runs: source ${ok.map((r) => fmt(r.span_ms.source_background)).join(", ")}; destination ${ok.map((r) => fmt(r.span_ms.destination_background)).join(", ")}); whole: each agent's start to its end.`,
    "",
    "| process / role | threads | background CPU ms, runs | median | per GiB | waiting for a CPU ms (median) | whole migration CPU ms (median) |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  ];
  const totals = ok.map(() => ({ bg: 0, wait: 0, whole: 0 }));
  for (const k of [...keys].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))) {
    const bg = ok.map((r) => pick(r, "background", k)?.cpu_ms ?? 0);
    const wait = ok.map((r) => pick(r, "background", k)?.wait_ms ?? null);
    const whole = ok.map((r) => pick(r, "whole", k)?.cpu_ms ?? 0);
    ok.forEach((_, i) => {
      totals[i].bg += bg[i];
      totals[i].wait += wait[i] ?? 0;
      totals[i].whole += whole[i];
    });
    const threads = Math.max(...ok.map((r) => pick(r, "whole", k)?.threads ?? pick(r, "background", k)?.threads ?? 0));
    const m = median(bg);
    const w = wait.filter((x): x is number => x !== null);
    lines.push(`| ${k} | ${threads} | ${bg.map((x) => fmt(x)).join(", ")} | ${fmt(m)} | ${fmt(m / gib)} | ${w.length === 0 ? "-" : fmt(median(w))} | ${fmt(median(whole))} |`);
  }
  const tb = totals.map((t) => t.bg);
  const span = ok.map((r) => Math.max(r.span_ms.source_background ?? 0, r.span_ms.destination_background ?? 0));
  lines.push(`| **all** | | ${tb.map((x) => fmt(x)).join(", ")} | ${fmt(median(tb))} | ${fmt(median(tb) / gib)} | ${fmt(median(totals.map((t) => t.wait)))} | ${fmt(median(totals.map((t) => t.whole)))} |`);
  lines.push(`| cores busy in the background (all ÷ longer span) | | ${tb.map((x, i) => fmt(x / Math.max(1, span[i]), 2)).join(", ")} | ${fmt(median(tb.map((x, i) => x / Math.max(1, span[i]))), 2)} | | | |`);
  return lines.join("\n");
}
