/**
 * What the destination agent tells the source agent in `report` messages
 * (JSON; the engines ignore them). While the migration runs: `progress`, a
 * few times a second, so the source's live view shows the destination's
 * side (present pages, faults and their latencies, guest steps). After
 * completion and the guest's remaining steps: `final`, with the hash of the
 * destination's RAM. Or `failed`, when the destination cannot finish.
 */
import type { DestinationMetrics } from "../engine/metrics.js";
import { LATENCY_BUCKETS, MAX_VCPU_IDS, type VcpuWaitFigures } from "../engine/vcpu-waits.js";
import { RealError } from "./errors.js";
import { MAX_BULK_CONNECTIONS } from "./preamble.js";

export interface ProgressReport {
  kind: "progress";
  /** faultLatenciesUs holds only the latencies since the previous progress report. */
  metrics: DestinationMetrics;
  /** Destination guest's steps, summed over vCPUs (null before it runs). */
  steps: number | null;
  /** Destination clock, µs. */
  at: number;
  /** Bytes of bulk connection 0's stream of link epoch `epoch` that its native receiver installed, and of connections 1… (`extra`); absent on the JS path. */
  bulkTaken?: { epoch: number; bytes: number; extra?: number[] };
  /** Destination clock, µs: when its engine took the switchover, and when the guest's RESUME returned (the downtime breakdown). */
  switchover?: { arrivedAt: number; resumedAt: number; frameAt?: number };
}

export interface FinalReport {
  kind: "final";
  /** Complete; resumedAt is when the guest actually ran again (the resume call returned). */
  metrics: DestinationMetrics;
  /** 16 hex digits: the destination guest's RAM after its last step. */
  hash: string;
  /** Summed over vCPUs: when resumed, when every page was present, at the end. */
  steps: { atResume: number; atComplete: number; atEnd: number };
  /** Whether some vCPU had already run all its steps when the last page arrived. */
  finishedBeforeComplete: boolean;
  /** The destination guest's per-vCPU progress log from its resume (unchecked: the source checks it). */
  progressLog?: unknown;
  /** Each vCPU's thread id, the ids metrics.vcpuWaits counts by (unchecked: the source checks it). */
  vcpuTids?: unknown;
  /** The destination guest's switchover stamps (guest-process.ts GuestStamps; unchecked: the source checks them). */
  guestStamps?: unknown;
  /** The destination agent's and guest's threads' CPU at its marks (thread-cpu.ts CpuAccount; unchecked: the source checks it). */
  cpuThreads?: unknown;
}

export interface FailedReport {
  kind: "failed";
  reason: string;
}

export type DestReport = ProgressReport | FinalReport | FailedReport;

const NUMBER_FIELDS = ["demandFaults", "faultEvents", "blocktimeUs", "pagesDropped"] as const;

function checkMetrics(m: unknown): DestinationMetrics {
  const o = m as Partial<DestinationMetrics> | null;
  if (typeof o !== "object" || o === null) throw new RealError("destination report without metrics");
  for (const k of NUMBER_FIELDS) if (typeof o[k] !== "number") throw new RealError(`destination report: metrics.${k} is not a number`);
  if (!Array.isArray(o.faultLatenciesUs) || typeof o.present !== "object" || typeof o.bytesSent !== "object") {
    throw new RealError("destination report: malformed metrics");
  }
  checkVcpuWaits(o.vcpuWaits);
  return o as DestinationMetrics;
}

const numbers = (a: unknown, max: number): boolean => Array.isArray(a) && a.length <= max && a.every((x) => typeof x === "number" && Number.isFinite(x) && x >= 0);

function checkVcpuWaits(w: unknown): void {
  const o = w as Partial<VcpuWaitFigures> | null;
  const ok =
    typeof o === "object" && o !== null && numbers(o.ids, MAX_VCPU_IDS) && numbers(o.count, MAX_VCPU_IDS) && numbers(o.sumUs, MAX_VCPU_IDS) &&
    numbers(o.dist, LATENCY_BUCKETS) && o.dist?.length === LATENCY_BUCKETS && o.count?.length === o.ids?.length && o.sumUs?.length === o.ids?.length;
  if (!ok) throw new RealError("destination report: metrics.vcpuWaits is malformed");
}

/** Parses a report message's JSON; throws a RealError naming what is wrong. */
export function parseDestReport(json: string): DestReport {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    throw new RealError("destination report is not JSON");
  }
  const o = v as { kind?: unknown; reason?: unknown; metrics?: unknown; hash?: unknown; steps?: unknown };
  switch (o?.kind) {
    case "progress": {
      checkMetrics(o.metrics);
      const t = (v as { bulkTaken?: unknown }).bulkTaken as { epoch?: unknown; bytes?: unknown; extra?: unknown } | undefined;
      const count = (n: unknown): boolean => Number.isSafeInteger(n) && (n as number) >= 0;
      const extraOk = (e: unknown): boolean => e === undefined || (Array.isArray(e) && e.length < MAX_BULK_CONNECTIONS && e.every(count));
      if (t !== undefined && !(typeof t === "object" && t !== null && Number.isSafeInteger(t.epoch) && count(t.bytes) && extraOk(t.extra))) {
        throw new RealError("destination report: malformed bulkTaken");
      }
      const sw = (v as { switchover?: unknown }).switchover as { arrivedAt?: unknown; resumedAt?: unknown; frameAt?: unknown } | undefined;
      if (sw !== undefined && !(typeof sw === "object" && sw !== null && Number.isFinite(sw.arrivedAt) && Number.isFinite(sw.resumedAt) && (sw.frameAt === undefined || Number.isFinite(sw.frameAt)))) {
        throw new RealError("destination report: malformed switchover");
      }
      return v as ProgressReport;
    }
    case "final":
      checkMetrics(o.metrics);
      if (typeof o.hash !== "string" || typeof o.steps !== "object") throw new RealError("destination final report lacks hash or steps");
      return v as FinalReport;
    case "failed":
      return { kind: "failed", reason: String(o.reason) };
    default:
      throw new RealError(`destination report of unknown kind ${JSON.stringify(o?.kind)}`);
  }
}
