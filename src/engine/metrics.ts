/**
 * Plain, serialisable counters each engine keeps as it runs (timestamps in
 * microseconds of the driver's clock), and the functions that turn a source's
 * and a destination's counters into a Report or a live Snapshot. In the real
 * back end the destination sends its metrics to the source as JSON at the end.
 */
import type { GuestDisruption } from "../disruption/derive.js";
import type { EndCause } from "./events.js";
import type { Mode } from "./messages.js";
import { VERSION } from "../version.js";
import type { Percentiles, Phase, PrecopyReport, PrecopyView, Report, RoundReport, Snapshot, SwitchoverReason } from "./report.js";
import { emptyVcpuWaits, type VcpuWaitFigures } from "./vcpu-waits.js";

export interface SourceMetrics {
  mode: Mode;
  pageSize: number;
  pageCount: number;
  phase: Phase;
  startedAt: number | null;
  setupDoneAt: number | null;
  rounds: RoundReport[];
  /** When the source asked its guest to pause for switchover. */
  pausedAt: number | null;
  finishedAt: number | null;
  outcome: "completed" | "cancelled" | "failed" | null;
  /** Why it ended, as an enum (drivers branch on this, never on `reason`). */
  cause: EndCause | null;
  reason: string;
  switchoverReason: SwitchoverReason;
  throttle: number;
  bytesSent: { urgent: number; bulk: number };
  pagesSent: number;
  pagesZero: number;
  pagesResent: number;
  /** Pages pushed in the background after switchover, and their bytes. */
  postcopyPushedPages: number;
  postcopyBulkBytes: number;
  /** Demand requests served (each page at most once unless resent after an outage). */
  requestsServed: number;
  /** Requests for a page already on its way (answered by that copy). */
  requestsAlreadySent: number;
  recoveries: number;
  /** Pre-copy's convergence figures as of the last round's end (null before one ended). */
  precopy: PrecopyFigures | null;
}

export interface PrecopyFigures {
  /** Pages dirtied during the last round: what the next round (or the stop-and-copy) sends. */
  remainingPages: number;
  /** The guest's dirty rate over the last round, bytes of pages per second. */
  dirtyRateBytesPerSec: number;
  /** Measured bulk bandwidth (0 until measured). */
  bandwidthBytesPerSec: number;
  /** Sending the remaining pages at that bandwidth would take this long, ms. */
  expectedDowntimeMs: number;
  downtimeLimitMs: number;
  /** The limit less its margin: the estimate a switch waits for (MigrationOptions.downtimeMargin). */
  downtimeTargetMs: number;
}

/** A source's counters before anything happened. */
export function newSourceMetrics(mode: Mode, layout: { pageSize: number; pageCount: number }): SourceMetrics {
  return {
    mode,
    pageSize: layout.pageSize,
    pageCount: layout.pageCount,
    phase: "setup",
    startedAt: null,
    setupDoneAt: null,
    rounds: [],
    pausedAt: null,
    finishedAt: null,
    outcome: null,
    cause: null,
    reason: "",
    switchoverReason: "none",
    throttle: 0,
    bytesSent: { urgent: 0, bulk: 0 },
    pagesSent: 0,
    pagesZero: 0,
    pagesResent: 0,
    postcopyPushedPages: 0,
    postcopyBulkBytes: 0,
    requestsServed: 0,
    requestsAlreadySent: 0,
    recoveries: 0,
    precopy: null,
  };
}

export interface DestinationMetrics {
  phase: Phase;
  resumedAt: number | null;
  completedAt: number | null;
  bytesSent: { urgent: number; bulk: number };
  /** Pages present, by how they came. */
  present: { precopy: number; background: number; demand: number };
  /** Distinct pages requested on demand. */
  demandFaults: number;
  /** vCPU fault events (several vCPUs may wait on one request). */
  faultEvents: number;
  /** First fault on a page → page installed, µs, one entry per demand request. */
  faultLatenciesUs: number[];
  /** Sum over vCPUs of time stalled on missing pages, µs. */
  blocktimeUs: number;
  /** Each vCPU's waits on missing pages, by the driver's vCPU id. */
  vcpuWaits: VcpuWaitFigures;
  pagesDropped: number;
}

/** A destination's counters before anything happened. */
export function emptyDestinationMetrics(): DestinationMetrics {
  return {
    phase: "setup",
    resumedAt: null,
    completedAt: null,
    bytesSent: { urgent: 0, bulk: 0 },
    present: { precopy: 0, background: 0, demand: 0 },
    demandFaults: 0,
    faultEvents: 0,
    faultLatenciesUs: [],
    blocktimeUs: 0,
    vcpuWaits: emptyVcpuWaits(),
    pagesDropped: 0,
  };
}

export function percentiles(values: readonly number[]): Percentiles {
  if (values.length === 0) return { p50: 0, p99: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return { p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] };
}

/** Buckets of log2(µs): index i counts values in [2^i, 2^(i+1)); values below 1 µs go to bucket 0. */
export function log2Histogram(values: readonly number[], buckets = 24): number[] {
  const h = new Array<number>(buckets).fill(0);
  for (const v of values) h[Math.min(buckets - 1, Math.max(0, Math.floor(Math.log2(Math.max(1, v)))))]++;
  return h;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;
const ms = (us: number) => round3(us / 1000);

/** Report keys the engine's counters cannot know: the driver's, and the backend-specific ones. */
type DriverKeys = "reason" | "verified" | "seed" | "options" | "link" | "real_link" | "outages" | "max_virtual_ms" | "sim" | "host" | "steps" | "hash" | "peer" | "guest_rate_steps_s" | "guest_finished_early" | "standby" | "real_connections" | "real_switchover" | "real_source_memory" | "real_cpu_threads" | "source_dies_at_ms";

export type ReportExtras = Pick<Report, "backend" | "workload" | "reason" | "verified" | "seed"> &
  Partial<Pick<Report, DriverKeys>> & {
    /** What the guest felt, from its progress log (null: no log). */
    guest: GuestDisruption | null;
  };

export function buildReport(src: SourceMetrics, dst: DestinationMetrics, extras: ReportExtras): Report {
  const { backend, workload, guest, reason, verified, seed, ...rest } = extras;
  const start = src.startedAt ?? 0;
  const end = Math.max(src.finishedAt ?? start, dst.completedAt ?? start);
  const downtime = src.pausedAt !== null && dst.resumedAt !== null ? dst.resumedAt - src.pausedAt : 0;
  const postcopyUs =
    dst.resumedAt !== null && dst.completedAt !== null && src.mode !== "precopy" ? dst.completedAt - dst.resumedAt : 0;
  return {
    backend,
    outcome: src.outcome ?? "failed",
    mode: src.mode,
    workload,
    mem_bytes: src.pageCount * src.pageSize,
    page_size: src.pageSize,
    setup_ms: src.setupDoneAt !== null ? ms(src.setupDoneAt - start) : 0,
    rounds: src.rounds.map((r) => ({ pages: r.pages, bytes: r.bytes, ms: round3(r.ms) })),
    downtime_ms: ms(downtime),
    total_ms: ms(end - start),
    bytes_sent: src.bytesSent.urgent + src.bytesSent.bulk + dst.bytesSent.urgent + dst.bytesSent.bulk,
    pages_sent: src.pagesSent,
    pages_zero: src.pagesZero,
    pages_resent: src.pagesResent,
    demand_faults: dst.demandFaults,
    fault_latency_us: mapPercentiles(percentiles(dst.faultLatenciesUs), round3),
    blocktime_ms: ms(dst.blocktimeUs),
    guest,
    background_mib_s: postcopyUs > 0 ? round3(src.postcopyBulkBytes / 1048576 / (postcopyUs / 1e6)) : 0,
    switchover_reason: src.switchoverReason,
    throttle: round3(src.throttle),
    recoveries: src.recoveries,
    precopy: precopyReport(src),
    reason,
    verified,
    seed,
    version: VERSION,
    ...rest,
  };
}

function precopyReport(src: SourceMetrics): PrecopyReport | null {
  const p = src.precopy;
  if (!p) return null;
  return {
    remaining_pages: p.remainingPages,
    dirty_rate_bytes_s: Math.round(p.dirtyRateBytesPerSec),
    bandwidth_bytes_s: Math.round(p.bandwidthBytesPerSec),
    expected_downtime_ms: round3(p.expectedDowntimeMs),
    downtime_limit_ms: p.downtimeLimitMs,
  };
}

function mapPercentiles(p: Percentiles, f: (x: number) => number): Percentiles {
  return { p50: f(p.p50), p99: f(p.p99), max: f(p.max) };
}

export interface SnapshotExtras {
  backend: "sim" | "real";
  workload: string;
  /** Driver clock now, µs. */
  now: number;
  guestProgress: number;
  guestSoFar?: { utilization: number; workLostVcpuS: number };
  report: Report | null;
  notice: string | null;
}

export function buildSnapshot(src: SourceMetrics, dst: DestinationMetrics, x: SnapshotExtras): Snapshot {
  // The destination has not reported yet (a real run before switchover): show what the source sent.
  const fromSource = dst.phase === "setup" && src.pagesSent > 0;
  return {
    backend: x.backend,
    mode: src.mode,
    workload: x.workload,
    phase: src.phase,
    elapsedMs: src.startedAt === null ? 0 : ms(x.now - src.startedAt),
    round: src.phase === "precopy" ? src.rounds.length + 1 : src.rounds.length,
    pageCount: src.pageCount,
    present: fromSource ? sentBySource(src) : { ...dst.present },
    presentFrom: fromSource ? "source" : "destination",
    channelBytes: {
      urgent: src.bytesSent.urgent + dst.bytesSent.urgent,
      bulk: src.bytesSent.bulk + dst.bytesSent.bulk,
    },
    demandFaults: dst.demandFaults,
    faultLatencyUs: dst.faultLatenciesUs.length ? percentiles(dst.faultLatenciesUs) : null,
    faultHistogram: log2Histogram(dst.faultLatenciesUs),
    guestProgress: x.guestProgress,
    ...(x.guestSoFar ? { guestSoFar: x.guestSoFar } : {}),
    throttle: src.throttle,
    downtimeMs: src.pausedAt !== null && dst.resumedAt !== null ? ms(dst.resumedAt - src.pausedAt) : null,
    report: x.report,
    notice: x.notice,
    precopy: precopyView(src),
  };
}

/** Distinct pages the source has sent, by how (pre-copy pages first; then pushes and demand replies). */
function sentBySource(src: SourceMetrics): Snapshot["present"] {
  const distinct = Math.min(src.pageCount, src.pagesSent - src.pagesResent);
  const background = Math.min(distinct, src.postcopyPushedPages);
  const demand = Math.min(distinct - background, src.requestsServed);
  return { precopy: distinct - background - demand, background, demand };
}

function precopyView(src: SourceMetrics): PrecopyView | null {
  if (src.mode === "postcopy" || (src.rounds.length === 0 && src.phase !== "precopy")) return null;
  const p = src.precopy;
  const toSend = p === null ? src.pageCount : p.remainingPages;
  // Pre-copy sends only bulk pages, one count per page: what this round sent is the excess over past rounds.
  const sentBefore = src.rounds.reduce((a, r) => a + r.pages, 0);
  const sentNow = src.phase === "precopy" ? Math.max(0, src.pagesSent - sentBefore) : 0;
  const remainingPages = src.phase === "precopy" ? Math.max(0, toSend - sentNow) : (p?.remainingPages ?? 0);
  return {
    remainingPages,
    remainingBytes: remainingPages * src.pageSize,
    dirtyRateBytesPerSec: p?.dirtyRateBytesPerSec ?? null,
    bandwidthBytesPerSec: p && p.bandwidthBytesPerSec > 0 ? p.bandwidthBytesPerSec : null,
    expectedDowntimeMs: p?.expectedDowntimeMs ?? null,
    downtimeLimitMs: p?.downtimeLimitMs ?? null,
    downtimeTargetMs: p?.downtimeTargetMs ?? null,
  };
}
