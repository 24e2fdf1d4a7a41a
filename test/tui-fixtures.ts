/** Hand-made snapshots and reports for the TUI tests, and a fake ViewSource. */
import { stripVTControlCharacters } from "node:util";
import { deriveDisruption } from "../src/disruption/derive.js";
import type { Report, Snapshot } from "../src/engine/report.js";
import type { ViewSource } from "../tui/source.js";

export const PAGES = 262_144; // 1 GiB of 4 KiB pages

export function snap(over: Partial<Snapshot> = {}): Snapshot {
  return {
    backend: "sim",
    mode: "hybrid",
    workload: "web-server",
    phase: "setup",
    elapsedMs: 0,
    round: 0,
    pageCount: PAGES,
    present: { precopy: 0, background: 0, demand: 0 },
    channelBytes: { urgent: 0, bulk: 0 },
    demandFaults: 0,
    faultLatencyUs: null,
    faultHistogram: new Array<number>(24).fill(0),
    guestProgress: 1,
    throttle: 0,
    downtimeMs: null,
    report: null,
    notice: null,
    ...over,
  };
}

export function report(over: Partial<Report> = {}): Report {
  return {
    backend: "sim",
    outcome: "completed",
    mode: "hybrid",
    workload: "web-server",
    mem_bytes: PAGES * 4096,
    page_size: 4096,
    setup_ms: 12.5,
    rounds: [
      { pages: 262_144, bytes: 1_073_741_824, ms: 9100 },
      { pages: 9120, bytes: 37_355_520, ms: 320 },
      { pages: 880, bytes: 3_604_480, ms: 31 },
    ],
    downtime_ms: 42.1,
    total_ms: 14_320,
    bytes_sent: 1_300_000_000,
    pages_sent: 281_000,
    pages_zero: 1024,
    pages_resent: 10_000,
    demand_faults: 1234,
    fault_latency_us: { p50: 180, p99: 2100, max: 8190 },
    blocktime_ms: 310.2,
    guest: deriveDisruption({ slotUs: 1000, spanUs: 1_000_000, baselinePerUs: 1, work: [Float64Array.from({ length: 1000 }, (_, i) => (i >= 100 && i < 227 ? 0 : 1000))] }),
    background_mib_s: 118.4,
    switchover_reason: "hybrid-rounds",
    throttle: 0,
    recoveries: 0,
    precopy: null,
    reason: "",
    verified: true,
    seed: 1,
    version: "0.1.0",
    ...over,
  };
}

/** Text of a frame without colours. */
export const plain = (frame: string | undefined): string => stripVTControlCharacters(frame ?? "");

/**
 * A simulated migration in virtual ms: setup until 500, pre-copy rounds of
 * 500 ms until switchAt, 100 ms switchover, post-copy until endMs. Cancel is
 * refused from switchover on.
 */
export class FakeSource implements ViewSource {
  t = 0;
  advances = 0;
  cancels = 0;
  cancelled = false;
  onAdvance: ((t: number) => void) | null = null;

  constructor(
    readonly endMs = 5000,
    readonly switchAt = 2000,
  ) {}

  advance(ms: number): void {
    this.advances++;
    this.t = Math.min(this.endMs, this.t + ms);
    this.onAdvance?.(this.t);
  }

  done(): boolean {
    return this.cancelled || this.t >= this.endMs;
  }

  cancel(): string | null {
    this.cancels++;
    if (this.t >= this.switchAt) return "past switchover";
    this.cancelled = true;
    return null;
  }

  snapshot(): Snapshot {
    const t = this.t;
    const share = Math.min(1, t / this.endMs);
    const base = snap({ elapsedMs: t, channelBytes: { urgent: t * 10, bulk: t * 1000 } });
    if (this.cancelled) {
      return { ...base, phase: "cancelled", round: 1, report: report({ outcome: "cancelled", switchover_reason: "none" }) };
    }
    if (t < 500) return base;
    if (t < this.switchAt) {
      const round = Math.floor((t - 500) / 500) + 1;
      return { ...base, phase: "precopy", round, present: { precopy: Math.floor(share * PAGES), background: 0, demand: 0 } };
    }
    const post = {
      ...base,
      round: 3,
      downtimeMs: 42,
      demandFaults: Math.floor((t - this.switchAt) / 10),
      present: { precopy: PAGES / 2, background: Math.max(0, Math.floor((share - 0.5) * PAGES)), demand: 0 },
    };
    if (t < this.switchAt + 100) return { ...post, phase: "switchover" };
    if (t < this.endMs) return { ...post, phase: "postcopy" };
    return { ...post, phase: "complete", present: { precopy: PAGES / 2, background: PAGES / 2, demand: 0 }, report: report() };
  }
}
