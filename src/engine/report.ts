/**
 * The figures every migration reports (simulated or real), and the live
 * snapshot a view (the TUI, progress lines) samples while it runs.
 * Keys of `Report` are the JSON keys of `ppsim --json`.
 */
import type { GuestDisruption } from "../disruption/derive.js";
import type { Mode } from "./messages.js";
import type { MigrationOptions } from "./options.js";

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

/** The simulated link a run used (simulator reports). */
export interface LinkReport {
  bandwidth_bytes_s: number;
  latency_us: number;
  shared_channel: boolean;
  /** As `--link` takes it, e.g. "1 Gbit/s, 100 µs". */
  text: string;
}

/** The link a real migration ran over. */
export interface RealLinkReport {
  kind: "loopback" | "netns" | "peer";
  text: string;
}

/** A link outage, relative to the migration start. */
export interface OutageReport {
  atMs: number;
  durationMs: number;
}

/** The simulator's own counters (simulator reports). */
export interface SimStats {
  events: number;
  guest_accesses: number;
  messages_lost: number;
  pages_released: number;
  /** Present (false) only when the run kept no page contents (SimConfig.trackContent): `verified` is then null. */
  content_tracked?: false;
}

/** The standby copy (issue 16), in reports of runs that kept one. */
export interface StandbyReport {
  /** Pages written to the copy in all. */
  pages_written: number;
  /** Pages the copy still had to write at switchover (the destination lacked them; the copy's were not current). */
  needed_at_switchover: number;
  /** Of those, pages the copy did not write because the destination said it held them first (the window closes where the copy and the push meet). */
  held_by_destination: number;
  /** When the window opened (the source guest paused for switchover), ms from the migration start; null without a post-copy switchover. */
  opened_at_ms: number | null;
  /** The unprotected window: switchover → the copy holds every page the destination lacked, or completion if sooner; ms; null if it never closed. */
  window_ms: number | null;
  closed_by: "copy" | "completion" | null;
  /** When the source died, from the migration start (ms), if it did. */
  source_died_at_ms: number | null;
  /** The destination's fill from the copy after the source died, if it came to that. */
  fill: { why: string; missing: number; filled: number; lost: number; lost_pages: string } | null;
  /** Simulator: the storage the copy was on (--standby-storage), so that `ppsim rerun` replays it. */
  storage?: { write_bytes_s: number; read_bytes_s: number | null; latency_us: number };
  /** Real back end: whether each write was made durable before it counted (--standby-sync). */
  sync?: boolean;
  /** Real back end: how long the source waited for a broken link (--reconnect-wait), ms. */
  reconnect_wait_ms?: number;
}

/** What decided pre-copy's convergence, as of the last round that ended. */
export interface PrecopyReport {
  /** Pages dirtied during that round: what the next round (or stop-and-copy) had to send. */
  remaining_pages: number;
  dirty_rate_bytes_s: number;
  /** Bulk throughput measured while the bulk queue was busy. */
  bandwidth_bytes_s: number;
  /** Time to send the remaining pages at that bandwidth. */
  expected_downtime_ms: number;
  downtime_limit_ms: number;
}

/** The memory hashes a real run compared (real reports). */
export interface HashReport {
  destination: string;
  unmigrated: string | null;
}

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
  /** What the guest felt (docs/disruption.md); null where the back end has no progress log. */
  guest: GuestDisruption | null;
  background_mib_s: number;
  switchover_reason: SwitchoverReason;
  /** Auto-converge throttle in force at the end (0..1; it only rises until then). */
  throttle: number;
  /** Link outages recovered from after switchover. */
  recoveries: number;
  /** Pre-copy's convergence figures of its last round; null without a finished round. */
  precopy: PrecopyReport | null;
  /** Why the run ended as it did. */
  reason: string;
  /** The destination's memory is exactly what the guest wrote; null when the run did not complete. */
  verified: boolean | null;
  seed: number;
  /** The ppsim version that made the report. */
  version: string;
  /** The options in force (every one, defaults included): with link, outages and seed, enough to rerun. */
  options?: MigrationOptions;
  /** Simulator. */
  link?: LinkReport;
  /** The workload file as given (the ppsim command adds it: `ppsim rerun` reads it back). */
  workload_spec?: unknown;
  outages?: OutageReport[];
  /** Virtual time after which an unfinished simulation fails, ms. */
  max_virtual_ms?: number;
  sim?: SimStats;
  /** Simulator: the host profile it charged (src/sim/host.ts); absent: free hosts. */
  host?: { ppsim_host_profile: number; measured_on: string } & Record<string, number | string>;
  /** With --standby: the copy's figures. */
  standby?: StandbyReport;
  /** Simulator: when the source was set to die (--source-dies-at), ms from the start; replayed by `ppsim rerun`. */
  source_dies_at_ms?: number;
  /** Real back end. */
  steps?: number;
  hash?: HashReport | null;
  peer?: string;
  /** What a real migration ran over (loopback, a shaped netns link, a peer). */
  real_link?: RealLinkReport;
  guest_rate_steps_s?: number;
  guest_finished_early?: boolean | null;
  /** Real back end (issue 9): bulk connections post-copy pages could use, and the most open at once. */
  real_connections?: { wanted: number; used: number };
  /** Real back end: where the downtime went, ms (null: a part was not measured, e.g. no switchover). */
  real_switchover?: SwitchoverBreakdown | null;
  /** Real back end: the source guest's memory (memfd bytes) over the migration, freed as pages leave in post-copy. */
  real_source_memory?: { peak_mib: number; punched_pages: number; over_time_ms_mib: [number, number][] } | null;
  /** Real back end (issue 9): each agent's and guest's threads' CPU at marks of the migration (src/real/thread-cpu.ts). */
  real_cpu_threads?: CpuThreadsReport | null;
}

/** One thread across an account's marks (real back end): ms on a CPU and runnable waiting for one, null before it existed. */
export interface CpuThreadRow {
  /** "source agent", "source guest", "destination agent", "destination guest". */
  process: string;
  pid: number;
  tid: number;
  comm: string;
  /** loop, bulk, lane, fault reader, puncher, node helpers; guest control, vcpu. */
  role: string;
  cpu_ms: (number | null)[];
  wait_ms: (number | null)[];
}

/** An agent's account: its marks' names and times (µs, its clock), and every thread seen at them. */
export interface CpuAccount {
  marks: string[];
  at_us: number[];
  threads: CpuThreadRow[];
}

/** Both agents' accounts; the destination's null when it sent none, or one that did not check. */
export interface CpuThreadsReport {
  source: CpuAccount;
  destination: CpuAccount | null;
}

/**
 * The downtime's parts (real back end), ms: pausing the source guest (the
 * engine's decision to the PAUSE reply with the vCPU state), the engine
 * taking the pause, to the link (pre-copy's last dirty pages), delivery (the
 * switchover's trip and the destination's engine taking it), resuming (stale
 * pages dropped and the destination guest's RESUME). The destination's
 * times are on its clock: on one host, one clock.
 */
export interface SwitchoverBreakdown {
  pause_ms: number;
  engine_ms: number;
  to_link_ms: number;
  delivery_ms: number;
  resume_ms: number;
  /** Of resume_ms, until the destination guest's vCPUs started (the guest's own clock); the rest is the RESUME reply's way back. */
  vcpus_started_ms?: number;
  /** The legs' sum: the source engine's decision to pause → the RESUME reply at the destination's loop. */
  agents_ms?: number;
  /** The downtime the guest has: the source's last vCPU park → the destination's first vCPU step (both guests' own stamps). */
  guest_ms?: number;
  /** The longest one vCPU went without a step: its last park at the source → its first step at the destination. */
  vcpu_worst_ms?: number;
  /** The destination's first vCPU step → the RESUME reply at its loop (in agents_ms, not in guest_ms). */
  after_first_step_ms?: number;
  /** Every stamp of the switchover, µs from the source's last vCPU park (real back end; source-report.ts). */
  trace_us?: Record<string, number>;
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
  /** Current (or last) pre-copy round, counting from 1; 0 before the first. */
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
  /** Guest speed over the last 200 ms as a share of its unmigrated speed (0..1). */
  guestProgress: number;
  /** Since the migration started: work done as a share of an unmigrated run's, and vCPU-seconds lost (the report's guest.utilization and guest.work_lost_vcpu_s). */
  guestSoFar?: { utilization: number; workLostVcpuS: number };
  /** Throttle ratio currently applied to the source guest (0 = none). */
  throttle: number;
  downtimeMs: number | null;
  /** Set once the migration has ended. */
  report: Report | null;
  /** A line for the operator (e.g. "cancel refused: past switchover"). */
  notice: string | null;
  /** Pre-copy and hybrid, from the first round on: what decides convergence. */
  precopy?: PrecopyView | null;
  /**
   * Where `present` comes from: the destination's counters, or (a real run
   * before the destination reported) the pages the source has sent.
   */
  presentFrom?: "destination" | "source";
}

export interface PrecopyView {
  /** Pages still to send in the current round, and their bytes. */
  remainingPages: number;
  remainingBytes: number;
  /** As of the last round that ended; null during the first. */
  dirtyRateBytesPerSec: number | null;
  bandwidthBytesPerSec: number | null;
  /** The dirty set of the last round at the measured bandwidth. */
  expectedDowntimeMs: number | null;
  /** Known from the first round's end on. */
  downtimeLimitMs: number | null;
  /** The limit less its margin: pre-copy switches once the estimate is at most this. */
  downtimeTargetMs: number | null;
}
