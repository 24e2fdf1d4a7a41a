/**
 * The source agent's report put together once a migration is over: its own
 * engine's figures, the destination's (sent at the end), the guest's
 * disruption from both guests' progress logs, the verification (the
 * destination's RAM hash against the unmigrated run's), where the downtime
 * went and the source's memory over the migration.
 */
import { deriveDisruption, type GuestDisruption } from "../disruption/derive.js";
import { vcpuFaultFigures } from "../disruption/faults.js";
import { checkGuestLog, traceFromLogs, type GuestLog } from "../disruption/guest-log.js";
import { buildReport } from "../engine/metrics.js";
import type { Report, SwitchoverBreakdown } from "../engine/report.js";
import { standbyReport } from "../engine/standby.js";
import type { Workload } from "../workload/types.js";
import { nowUs } from "./clock.js";
import type { FinalReport } from "./report-msg.js";
import type { DriverEnd, SourceDriver } from "./source-driver.js";
import type { MemorySample } from "./source-release.js";

/**
 * Where the downtime went, ms (issue 9): pausing the source guest (from the
 * engine's decision to the PAUSE reply with the vCPU state), the engine
 * taking the pause (dirty log, stale list, every unsent page pending), to
 * the link (pre-copy's last dirty pages; ~0 in post-copy), delivery (the
 * switchover's trip and the destination's engine taking it), resuming
 * (stale pages dropped and the destination guest's RESUME). The
 * destination's times are on its clock: on one host, one clock.
 */
export function switchoverBreakdown(d: SourceDriver | null): SwitchoverBreakdown | null {
  const t = d?.switchoverTimes;
  const asked = d?.engine.metrics.pausedAt ?? null;
  if (t === undefined || asked === null || t.pausedAt === null || t.engineUs === null || t.sentAt === null || t.arrivedAt === null || t.resumedAt === null) return null;
  const ms = (us: number): number => Math.round(us) / 1000;
  const b: SwitchoverBreakdown = { pause_ms: ms(t.pausedAt - asked), engine_ms: ms(t.engineUs), to_link_ms: ms(t.sentAt - t.pausedAt - t.engineUs), delivery_ms: ms(t.arrivedAt - t.sentAt), resume_ms: ms(t.resumedAt - t.arrivedAt) };
  // The destination guest's own record of when its vCPUs started (its progress log's origin, on the agents' clock).
  const origin = (d?.final?.progressLog as { originUs?: unknown } | undefined)?.originUs;
  if (typeof origin === "number" && Number.isFinite(origin)) b.vcpus_started_ms = ms(origin - t.arrivedAt);
  return b;
}

/** The source guest's memory (memfd bytes) over the migration, and how many pages were punched as they left (issue 9). */
export interface SourceMemory {
  samples: readonly MemorySample[];
  peakBytes: number;
  punchedPages: number;
}

/** The source's memory for the report: peak, pages punched as they left, and MiB at each sample (ms from the first). */
function sourceMemoryReport(m: SourceMemory | null): Report["real_source_memory"] {
  if (m === null || m.samples.length === 0) return null;
  const MiB = 2 ** 20;
  const t0 = m.samples[0].at;
  const over = m.samples.map((x): [number, number] => [Math.round((x.at - t0) / 1000), Math.round((x.bytes / MiB) * 10) / 10]);
  return { peak_mib: Math.round((m.peakBytes / MiB) * 10) / 10, punched_pages: m.punchedPages, over_time_ms_mib: over };
}

/** What the agent knows of the run beside its driver. */
export interface SourceRun {
  workload: Workload;
  seed: number;
  steps: number;
  /** The source guest's unmigrated rate in the warmup, steps per µs (all vCPUs). */
  baseline: number;
  stepsAtStart: number;
  /** The source guest's progress log up to the pause (null: none). */
  sourceLog: GuestLog | null;
  peer: { host: string; port: number };
  link?: { kind: "loopback" | "netns" | "peer"; text: string };
  connections: { wanted: number; used: number };
  sourceMemory: SourceMemory | null;
  switchover: SwitchoverBreakdown | null;
  standbySync: boolean;
  reconnectTimeoutMs: number;
}

/**
 * The report of a run that ended as `end`: `final` is the destination's final
 * report (or why none came), `reference` the unmigrated run's hash (or why
 * there is none).
 */
export function sourceReport(d: SourceDriver, end: DriverEnd, final: FinalReport | string | null, reference: string | Error | null, run: SourceRun): Report {
  const expected = typeof reference === "string" ? reference : null;
  const src = d.engine.metrics;
  const now = nowUs();
  // A run the engine did not end itself (no connection, link not re-established) still needs an end.
  const srcMetrics = src.outcome === null ? { ...src, outcome: end.outcome, reason: end.reason, startedAt: src.startedAt ?? now, finishedAt: now } : src;
  const got = typeof final === "object" && final !== null ? final : null;
  const dst = got?.metrics ?? d.remote;
  // Both guests' progress logs joined (docs/disruption.md); without the destination's, one slot: the whole migration.
  let guest: GuestDisruption | null = null;
  if (got !== null && dst.completedAt !== null && src.startedAt !== null && run.baseline > 0) {
    const vcpus = run.workload.vcpus;
    const baseline = run.baseline / vcpus;
    const destLog = checkGuestLog(got.progressLog, vcpus);
    const faults = vcpuFaultFigures(dst.vcpuWaits, got.vcpuTids, vcpus);
    if (run.sourceLog !== null && destLog !== null) {
      guest = deriveDisruption(traceFromLogs([run.sourceLog, destLog], src.startedAt, dst.completedAt, baseline), faults);
    } else {
      const spanUs = Math.max(1, dst.completedAt - src.startedAt);
      const perVcpu = (got.steps.atComplete - run.stepsAtStart) / vcpus;
      guest = deriveDisruption({ slotUs: spanUs, spanUs, baselinePerUs: baseline, work: Array.from({ length: vcpus }, () => Float64Array.of(perVcpu)) }, faults);
    }
  }
  let reason = end.reason;
  let verified: boolean | null = null;
  if (end.outcome === "completed") {
    verified = got !== null && expected !== null && got.hash === expected;
    if (got === null) reason = `migration completed but ${typeof final === "string" ? final : "no report came"}`;
    else if (reference instanceof Error) reason = `migration completed but the unmigrated reference run failed: ${reference.message}`;
    else if (!verified) reason = `the destination's memory hash ${got.hash} differs from the unmigrated run's ${expected ?? "?"}`;
  }
  const { peer } = run;
  return buildReport(srcMetrics, dst, {
    backend: "real",
    workload: run.workload.name,
    guest,
    reason,
    seed: run.seed,
    steps: run.steps,
    verified,
    hash: got === null ? null : { destination: got.hash, unmigrated: expected },
    peer: `${peer.host}:${peer.port}`,
    real_link: run.link ?? { kind: "peer", text: `peer ${peer.host}:${peer.port}` },
    guest_rate_steps_s: Math.round(run.baseline * 1e6),
    guest_finished_early: got?.finishedBeforeComplete ?? null,
    real_connections: run.connections,
    real_switchover: run.switchover,
    real_source_memory: sourceMemoryReport(run.sourceMemory),
    ...(d.engine.standbyFigures === null ? {} : { standby: { ...standbyReport(d.engine.standbyFigures, src.startedAt ?? now, dst.completedAt, null, null), sync: run.standbySync, reconnect_wait_ms: run.reconnectTimeoutMs } }),
  });
}
