/**
 * The figures every migration reports (simulated or real), and the live
 * snapshot a view (the TUI, progress lines) samples while it runs.
 * Keys of `Report` are the JSON keys of `ppsim --json`.
 */
import type { Mode } from "./messages.js";

export interface Percentiles {
  p50: number;
  p99: number;
  max: number;
}

export interface RoundReport {
  pages: number;
  bytes: number;
  ms: number;
}

export type SwitchoverReason =
  /** post-copy: switch at once, no pre-copy. */
  | "postcopy"
  /** pre-copy/hybrid: the remaining dirty set fits the downtime limit. */
  | "converged"
  /** as above, but only once auto-converge throttled the guest. */
  | "converged-throttled"
  /** pre-copy: the round cap was reached without converging; stop-and-copy regardless. */
  | "round-cap"
  /** hybrid: the configured pre-copy rounds are done. */
  | "hybrid-rounds"
  /** hybrid: the dirty set stopped shrinking. */
  | "hybrid-stalled"
  /** no switchover happened (cancelled or failed before it). */
  | "none";

export interface Report {
  backend: "sim" | "real";
  outcome: "completed" | "cancelled" | "failed";
  mode: Mode;
  workload: string;
  mem_bytes: number;
  page_size: number;
  setup_ms: number;
  rounds: RoundReport[];
  downtime_ms: number;
  total_ms: number;
  bytes_sent: number;
  pages_sent: number;
  pages_zero: number;
  pages_resent: number;
  demand_faults: number;
  fault_latency_us: Percentiles;
  blocktime_ms: number;
  guest_progress: number;
  background_mib_s: number;
  switchover_reason: SwitchoverReason;
  /** Free-form extras a driver adds (link, seed, throttle, verification...). */
  [extra: string]: unknown;
}

export type Phase =
  | "setup"
  | "precopy"
  | "switchover"
  | "postcopy"
  | "recovering"
  | "complete"
  | "cancelled"
  | "failed";

/** What a live view samples; cumulative counters, so the view derives rates itself. */
export interface Snapshot {
  backend: "sim" | "real";
  mode: Mode;
  workload: string;
  phase: Phase;
  /** Time since the migration started, in the driver's clock (virtual for the simulator). */
  elapsedMs: number;
  /** Current (or last) pre-copy round, 0 before the first. */
  round: number;
  pageCount: number;
  /** Pages present at the destination, by how they arrived. */
  present: { precopy: number; background: number; demand: number };
  /** Cumulative bytes put on the wire, per channel (both directions). */
  channelBytes: { urgent: number; bulk: number };
  demandFaults: number;
  faultLatencyUs: Percentiles | null;
  /** Fault service latencies in buckets: index i counts latencies in [2^i, 2^(i+1)) µs. */
  faultHistogram: number[];
  /** Guest progress over the recent past as a share of its unmigrated rate (0..1). */
  guestProgress: number;
  /** Throttle ratio currently applied to the source guest (0 = none). */
  throttle: number;
  downtimeMs: number | null;
  /** Set once the migration has ended. */
  report: Report | null;
  /** A line for the operator (e.g. "cancel refused: past switchover"). */
  notice: string | null;
}
