/**
 * What an HTML report draws for one run: its report, a bounded series of
 * samples of the live snapshot (presence by origin, bytes per channel), and
 * each vCPU's utilization over time from the guest's progress log.
 */
import type { ProgressTrace } from "../disruption/recorder.js";
import { utilizationTimeline } from "../disruption/derive.js";
import type { Report, Snapshot } from "../engine/report.js";

export interface Sample {
  t_ms: number;
  precopy: number;
  background: number;
  demand: number;
  urgent_bytes: number;
  bulk_bytes: number;
}

export interface RunRecording {
  /** Shown in legends: the mode, or "sim"/"real". */
  label: string;
  report: Report;
  samples: Sample[];
  /** Demand-fault service latencies, log2 µs buckets (the snapshot's faultHistogram at the end). */
  faultHistogram: number[];
  /** Per-vCPU utilization (0..1) over time; null without a fine progress log. */
  vcpus: { t_ms: number[]; per_vcpu: number[][] } | null;
}

/** Most samples kept; past it every other one goes, so a run of any length fits. */
export const MAX_SAMPLES = 600;

export class SampleLog {
  private samples: Sample[] = [];
  private minGapMs = 0;
  private lastMs = -Infinity;
  private last: Snapshot | null = null;

  add(s: Snapshot): void {
    this.last = s;
    if (s.elapsedMs - this.lastMs < this.minGapMs || s.elapsedMs <= this.lastMs) return;
    this.lastMs = s.elapsedMs;
    this.samples.push({ t_ms: s.elapsedMs, ...s.present, urgent_bytes: s.channelBytes.urgent, bulk_bytes: s.channelBytes.bulk });
    if (this.samples.length > MAX_SAMPLES) {
      this.samples = this.samples.filter((_, i) => i % 2 === 0);
      this.minGapMs = Math.max(this.minGapMs * 2, (this.samples.at(-1)?.t_ms ?? 0) / MAX_SAMPLES);
    }
  }

  get latest(): Snapshot | null {
    return this.last;
  }

  recording(label: string, report: Report, trace: ProgressTrace | null): RunRecording {
    const fine = trace !== null && trace.work.length > 0 && (trace.work[0]?.length ?? 0) > 1;
    return {
      label,
      report,
      samples: this.samples,
      faultHistogram: this.last?.faultHistogram ?? [],
      vcpus: fine ? utilizationTimeline(trace, 400) : null,
    };
  }
}
