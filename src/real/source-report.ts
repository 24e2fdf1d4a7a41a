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
import type { GuestLogWithStamps, GuestStamps } from "./guest-process.js";
import type { DriverEnd, SourceDriver } from "./source-driver.js";
import type { MemorySample } from "./source-release.js";
import { checkCpuAccount } from "./thread-cpu-summary.js";

/**
 * One switchover's stamps, µs on the agents' clock (one clock on one host;
 * across hosts as good as their sync). Source: the engine's decision to
 * pause, the PAUSE reply, the engine's part, the hand-off to the link.
 * Destination: the switchover frame at its session, its engine taking it
 * (the RESUME asked for), the RESUME reply. Each guest's own stamps
 * (guest-process.ts) and the destination guest's progress-log origin.
 */
export interface SwitchoverTimes {
  askedAt: number;
  pausedAt: number;
  engineUs: number;
  sentAt: number;
  frameAt?: number | null;
  arrivedAt: number;
  resumedAt: number;
  destOriginUs?: number | null;
  source?: GuestStamps | null;
  dest?: GuestStamps | null;
}

/** A peer's stamps, checked (finite numbers, one per vCPU), or null with nothing trusted. */
export function checkStamps(x: unknown, vcpus: number): GuestStamps | null {
  const o = x as Partial<GuestStamps> | null;
  const t = (v: unknown): boolean => v === null || (typeof v === "number" && Number.isFinite(v));
  const list = (a: unknown): boolean => Array.isArray(a) && a.length === vcpus && a.every(t);
  if (typeof o !== "object" || o === null || !t(o.pauseReadUs) || !t(o.resumeReadUs) || !list(o.firstStepUs) || !list(o.lastParkUs)) return null;
  return o as GuestStamps;
}

const ms = (us: number): number => Math.round(us) / 1000;
const known = (xs: readonly (number | null)[] | undefined): number[] => (xs ?? []).filter((x): x is number => x !== null);

/**
 * Where the downtime went, ms (issue 9). The agents' legs, from the source
 * engine's decision to pause to the RESUME reply at the destination's loop
 * (`agents_ms`, their sum): pausing the source guest (to the PAUSE reply
 * with the vCPU state), the engine taking the pause (dirty log, stale list,
 * every unsent page pending), to the link (pre-copy's last dirty pages; ~0
 * in post-copy), delivery (the switchover's trip and the destination's
 * engine taking it), resuming (the destination guest's RESUME and its
 * reply). With both guests' stamps, the downtime the guest has (`guest_ms`):
 * from the source's last vCPU park (the latest over its vCPUs: no vCPU runs
 * there after it) to the destination's first vCPU step (the earliest: one
 * runs again) — the engine's decision comes before the vCPUs stop and the
 * RESUME reply after one runs, so neither end is the guest's. `trace_us`:
 * every stamp, µs from the source's last vCPU park (or the decision).
 */
export function breakdownOf(t: SwitchoverTimes): SwitchoverBreakdown {
  const b: SwitchoverBreakdown = {
    pause_ms: ms(t.pausedAt - t.askedAt),
    engine_ms: ms(t.engineUs),
    to_link_ms: ms(t.sentAt - t.pausedAt - t.engineUs),
    delivery_ms: ms(t.arrivedAt - t.sentAt),
    resume_ms: ms(t.resumedAt - t.arrivedAt),
    agents_ms: ms(t.resumedAt - t.askedAt),
  };
  if (typeof t.destOriginUs === "number") b.vcpus_started_ms = ms(t.destOriginUs - t.arrivedAt);
  const parks = known(t.source?.lastParkUs);
  const firsts = known(t.dest?.firstStepUs);
  const lastPark = parks.length > 0 ? Math.max(...parks) : null;
  const firstStep = firsts.length > 0 ? Math.min(...firsts) : null;
  if (lastPark !== null && firstStep !== null) {
    b.guest_ms = ms(firstStep - lastPark);
    // Per vCPU: its last step here to its first there; the worst of them.
    let worst = -Infinity;
    const src = t.source?.lastParkUs ?? [];
    const dst = t.dest?.firstStepUs ?? [];
    for (let v = 0; v < Math.min(src.length, dst.length); v++) {
      const a = src[v];
      const z = dst[v];
      if (a !== null && z !== null) worst = Math.max(worst, z - a);
    }
    if (worst > -Infinity) b.vcpu_worst_ms = ms(worst);
    b.after_first_step_ms = ms(t.resumedAt - firstStep);
  }
  const zero = lastPark ?? t.askedAt;
  const rel = (us: number | null | undefined): number | undefined => (typeof us === "number" ? Math.round(us - zero) : undefined);
  const trace: Record<string, number | undefined> = {
    asked: rel(t.askedAt),
    source_pause_read: rel(t.source?.pauseReadUs),
    source_last_park: rel(lastPark),
    paused: rel(t.pausedAt),
    engine_done: rel(t.pausedAt + t.engineUs),
    sent: rel(t.sentAt),
    frame_at_destination: rel(t.frameAt),
    arrived: rel(t.arrivedAt),
    dest_resume_read: rel(t.dest?.resumeReadUs),
    dest_vcpus_started: rel(t.destOriginUs),
    dest_first_step: rel(firstStep),
    resumed: rel(t.resumedAt),
  };
  b.trace_us = Object.fromEntries(Object.entries(trace).filter((e): e is [string, number] => e[1] !== undefined));
  return b;
}

/** The driver's switchover (null before it completed one) with both guests' stamps: `sourceLog` is the source guest's log after the pause. */
export function switchoverBreakdown(d: SourceDriver | null, sourceLog: GuestLogWithStamps | null = null, vcpus = sourceLog?.vcpus.length ?? 0): SwitchoverBreakdown | null {
  const t = d?.switchoverTimes;
  const asked = d?.engine.metrics.pausedAt ?? null;
  if (t === undefined || asked === null || t.pausedAt === null || t.engineUs === null || t.sentAt === null || t.arrivedAt === null || t.resumedAt === null) return null;
  // The destination guest's own records (its final report; a peer's: checked).
  const log = d?.final?.progressLog as { originUs?: unknown } | undefined;
  const origin = typeof log?.originUs === "number" && Number.isFinite(log.originUs) ? log.originUs : null;
  const dest = d?.final?.guestStamps === undefined ? null : checkStamps(d.final.guestStamps, vcpus);
  return breakdownOf({ askedAt: asked, pausedAt: t.pausedAt, engineUs: t.engineUs, sentAt: t.sentAt, frameAt: t.frameAt, arrivedAt: t.arrivedAt, resumedAt: t.resumedAt, destOriginUs: origin, source: sourceLog?.stamps ?? null, dest });
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
  const report = buildReport(srcMetrics, dst, {
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
    // The destination's account is a peer's words: checked, or null.
    real_cpu_threads: { source: d.cpu.result(), destination: got?.cpuThreads === undefined ? null : checkCpuAccount(got.cpuThreads) },
    ...(d.engine.standbyFigures === null ? {} : { standby: { ...standbyReport(d.engine.standbyFigures, src.startedAt ?? now, dst.completedAt, null, null), sync: run.standbySync, reconnect_wait_ms: run.reconnectTimeoutMs } }),
  });
  // The downtime the guest has (source's last vCPU park → destination's first vCPU step), where both guests said;
  // the agents' span (decision → RESUME reply) stays in real_switchover.agents_ms.
  const g = run.switchover?.guest_ms;
  if (g !== undefined && Number.isFinite(g) && g >= 0) report.downtime_ms = g;
  return report;
}
