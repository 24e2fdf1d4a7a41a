/**
 * The report at a simulated run's end: the engines' metrics with what only
 * the simulator knows (the guest's disruption, the check of the destination's
 * memory, its own counts), in the shape the real back end's report has.
 */
import { deriveDisruption } from "../disruption/derive.js";
import type { DestinationMetrics, SourceMetrics } from "../engine/metrics.js";
import { buildReport } from "../engine/metrics.js";
import type { MigrationOptions } from "../engine/options.js";
import type { Report } from "../engine/report.js";
import type { Workload } from "../workload/types.js";
import { withVcpuBlocktime } from "./async-faults.js";
import type { ExpectedMemory } from "./expected-memory.js";
import type { GuestShared } from "./guest-shared.js";
import type { HostProfile } from "./host.js";
import { formatLink, type Link } from "./link.js";
import type { Msg, Outage } from "./sim-config.js";
import type { StandbyRun } from "./standby-run.js";

export interface RunEnd {
  outcome: "completed" | "cancelled" | "failed";
  reason: string;
  /** The time of the event that ended it. */
  now: number;
  startUs: number;
  src: SourceMetrics;
  dest: DestinationMetrics;
  shared: GuestShared;
  expected: ExpectedMemory;
  link: Link<Msg>;
  standby: StandbyRun;
  host: HostProfile | null;
  /** The migration view of the workload (huge pages moved whole) and the workload as written. */
  workload: Workload;
  written: Workload;
  seed: number;
  options: MigrationOptions;
  outages: Outage[];
  maxVirtualMs: number;
  events: number;
  pagesReleased: number;
}

export function simReport(e: RunEnd): Report {
  const src = e.src;
  // A run the engine did not end itself (the deadline) still needs an end and an outcome.
  const srcMetrics = src.outcome === null || e.standby.diedAt !== null ? { ...src, outcome: e.outcome, reason: e.reason, finishedAt: e.now } : src;
  const endUs = Math.max(srcMetrics.finishedAt ?? e.now, e.dest.completedAt ?? 0);
  const shared = e.shared;
  shared.progress.stop(endUs);
  const guest = endUs > e.startUs ? deriveDisruption(shared.progress.trace(), shared.faults.figures()) : null;
  // Without tracked contents there is nothing to compare: not checked, rather than passed.
  const verified = e.outcome === "completed" && shared.content ? e.expected.verify(e.workload.pageCount).ok : null;
  const spec = e.link.spec;
  const sim = { events: e.events, guest_accesses: shared.accesses, messages_lost: e.link.lost, pages_released: e.pagesReleased };
  let report = buildReport(srcMetrics, e.dest, {
    backend: "sim",
    workload: e.workload.name,
    guest,
    reason: srcMetrics.reason || e.reason,
    link: { bandwidth_bytes_s: spec.bandwidthBytesPerSec, latency_us: spec.latencyUs, shared_channel: spec.sharedChannel === true, text: formatLink(spec) },
    seed: e.seed,
    verified,
    options: { ...e.options },
    outages: e.outages,
    max_virtual_ms: e.maxVirtualMs,
    sim: shared.content ? sim : { ...sim, content_tracked: false },
    ...(e.host ? { host: { ...e.host } } : {}),
    ...e.standby.extras(e.startUs),
  });
  report = withVcpuBlocktime(report, e.written);
  // With the hosts' park (host-switchover.ts) the guest's downtime starts at its park, as the real report's does, not at the decision.
  const parkUs = e.host?.park_us;
  if (parkUs !== undefined && src.pausedAt !== null && e.dest.resumedAt !== null) {
    report = { ...report, downtime_ms: Math.round(((e.dest.resumedAt - src.pausedAt - parkUs) / 1000) * 1000) / 1000 };
  }
  return report;
}
