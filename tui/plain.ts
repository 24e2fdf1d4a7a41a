/** Non-TTY output: plain progress lines, then the report, one key a line. */
import type { Report, Snapshot } from "../src/engine/report.js";
import { fmtCount, fmtDuration, fmtPercent, fmtRate } from "./format.js";
import { sleep, tick } from "./pacer.js";
import { reportRows } from "./report-rows.js";
import type { ViewSource } from "./source.js";

export function phaseLabel(s: Snapshot): string {
  switch (s.phase) {
    case "precopy":
      return `pre-copy r${s.round}`;
    case "postcopy":
      return "post-copy";
    default:
      return s.phase;
  }
}

/** "[   12.34 s] post-copy     present  62.5%  faults 1,234 (57.0/s)  urgent 1.20 MiB/s  bulk 118 MiB/s" */
export function progressLine(s: Snapshot, prev: Snapshot | null): string {
  const present = s.present.precopy + s.present.background + s.present.demand;
  const dt = prev ? (s.elapsedMs - prev.elapsedMs) / 1000 : 0;
  const per = (now: number, before: number) => (dt > 0 ? (now - before) / dt : null);
  const urgent = prev ? per(s.channelBytes.urgent, prev.channelBytes.urgent) : null;
  const bulk = prev ? per(s.channelBytes.bulk, prev.channelBytes.bulk) : null;
  const faults = prev ? per(s.demandFaults, prev.demandFaults) : null;
  const parts = [
    `[${fmtDuration(s.elapsedMs).padStart(8)}]`,
    phaseLabel(s).padEnd(13),
    `${s.presentFrom === "source" ? "sent   " : "present"} ${fmtPercent(s.pageCount > 0 ? present / s.pageCount : 0).padStart(6)}`,
    `faults ${fmtCount(s.demandFaults)}${faults === null ? "" : ` (${faults.toFixed(1)}/s)`}`,
  ];
  if (urgent !== null && bulk !== null) parts.push(`urgent ${fmtRate(urgent)}`, `bulk ${fmtRate(bulk)}`);
  const p = s.phase === "precopy" ? s.precopy : null;
  if (p) {
    parts.push(`remaining ${fmtCount(p.remainingPages)}`);
    if (p.dirtyRateBytesPerSec !== null) parts.push(`dirty ${fmtRate(p.dirtyRateBytesPerSec)}`);
    if (p.expectedDowntimeMs !== null && p.downtimeTargetMs !== null) parts.push(`expect ${fmtDuration(p.expectedDowntimeMs)}/${fmtDuration(p.downtimeTargetMs)}`);
  }
  if (s.throttle > 0) parts.push(`throttle ${fmtPercent(s.throttle, 0)}`);
  if (s.downtimeMs !== null) parts.push(`downtime ${fmtDuration(s.downtimeMs)}`);
  return parts.join("  ");
}

export function reportLines(r: Report): string[] {
  const rows = reportRows(r);
  const w = Math.max(...rows.map(([k]) => k.length)) + 2;
  return [`report: ${r.outcome}`, ...rows.map(([k, v]) => `  ${k.padEnd(w)}${v}`)];
}

export interface PlainOptions {
  write: (line: string) => void;
  /** A progress line every this many ms of the driver's clock (and at each phase change); default 1000. */
  everyMs?: number;
  /** Simulator: virtual ms per advance() call; default 100. */
  advanceChunkMs?: number;
}

/**
 * Drive the source to the end, writing progress lines, then the report.
 * Lines follow the driver's clock, so a simulated run prints the same lines
 * every time. The real back end is polled every min(everyMs, 200) wall ms.
 */
export async function runPlain(source: ViewSource, opts: PlainOptions): Promise<Snapshot> {
  const everyMs = opts.everyMs ?? 1000;
  const chunk = opts.advanceChunkMs ?? 100;
  let printed: Snapshot | null = null;
  let nextAt = 0;
  let notice: string | null = null;
  for (;;) {
    if (source.advance && !source.done()) source.advance(chunk);
    const s = source.snapshot();
    const done = source.done();
    if (printed === null || s.phase !== printed.phase || s.round !== printed.round || s.elapsedMs >= nextAt || done) {
      opts.write(progressLine(s, printed));
      printed = s;
      nextAt = (Math.floor(s.elapsedMs / everyMs) + 1) * everyMs;
    }
    if (s.notice && s.notice !== notice) opts.write(`! ${s.notice}`);
    notice = s.notice;
    if (done) {
      if (s.report) for (const l of reportLines(s.report)) opts.write(l);
      return s;
    }
    await (source.advance ? tick() : sleep(Math.min(everyMs, 200)));
  }
}
