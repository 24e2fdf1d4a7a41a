/**
 * Guest progress as the live view shows it: steps per second over the last
 * second, as a share of the rate measured during warmup. Samples come from
 * the source guest until it pauses, then from the destination's progress
 * reports (its step counts continue the source's).
 */
const WINDOW_US = 1_000_000;

export class ProgressWindow {
  private readonly samples: { at: number; steps: number }[] = [];

  /** `baseline`: the unmigrated rate, steps per µs over all vCPUs. */
  constructor(private readonly baseline: number) {}

  add(at: number, steps: number): void {
    const last = this.samples[this.samples.length - 1];
    if (last !== undefined && at <= last.at) return;
    this.samples.push({ at, steps });
    while (this.samples.length > 2 && this.samples[1].at < at - WINDOW_US) this.samples.shift();
  }

  /** The newest sample, or null before any. */
  get latest(): { at: number; steps: number } | null {
    return this.samples[this.samples.length - 1] ?? null;
  }

  /** 0..1; 1 before there are two samples. */
  recent(now: number): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (first === undefined || last === first || !(this.baseline > 0)) return 1;
    // A guest that stopped reporting (paused, or between reports) counts as stalled since.
    const span = Math.max(now, last.at) - first.at;
    return Math.max(0, Math.min(1, (last.steps - first.steps) / span / this.baseline));
  }
}

/**
 * Since the migration started (`startAt`, when the guest had done `startSteps`):
 * work done as a share of an unmigrated run's and vCPU-seconds lost — the live
 * counterparts of the report's guest.utilization and guest.work_lost_vcpu_s,
 * up to the newest sample (a stall shows once the guest reports again:
 * counting to `now` would count the samples' age as lost work).
 */
export function workSoFar(
  latest: { at: number; steps: number } | null,
  startAt: number,
  startSteps: number,
  baseline: number,
  vcpus: number,
): { utilization: number; workLostVcpuS: number } | undefined {
  if (latest === null) return undefined;
  const spanUs = latest.at - startAt;
  if (!(baseline > 0) || !(spanUs > 0) || vcpus <= 0) return undefined;
  const expected = spanUs * baseline;
  const done = Math.max(0, Math.min(expected, latest.steps - startSteps));
  return { utilization: done / expected, workLostVcpuS: (expected - done) / (baseline / vcpus) / 1e6 };
}

/** Sum of steps over vCPUs. */
export function totalSteps(p: { vcpus: { steps: number }[] }): number {
  return p.vcpus.reduce((a, v) => a + v.steps, 0);
}
