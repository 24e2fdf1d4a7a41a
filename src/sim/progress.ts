/**
 * Guest progress over a sliding window: useful vCPU time done / (vCPUs ×
 * elapsed). Samples every few ms of virtual time so a live view can ask at
 * any moment without the simulator keeping every step.
 */
const SAMPLE_EVERY_US = 10_000;

export class ProgressMeter {
  private readonly times: Float64Array;
  private readonly works: Float64Array;
  private count = 0;
  private head = 0;
  private lastSampleAt = -Infinity;

  constructor(
    private readonly vcpus: number,
    private readonly windowUs: number,
  ) {
    const slots = Math.ceil(windowUs / SAMPLE_EVERY_US) + 2;
    this.times = new Float64Array(slots);
    this.works = new Float64Array(slots);
  }

  reset(now: number, work: number): void {
    this.count = 0;
    this.lastSampleAt = -Infinity;
    this.sample(now, work);
  }

  sample(now: number, work: number): void {
    if (now - this.lastSampleAt < SAMPLE_EVERY_US) return;
    this.lastSampleAt = now;
    this.times[this.head] = now;
    this.works[this.head] = work;
    this.head = (this.head + 1) % this.times.length;
    if (this.count < this.times.length) this.count++;
  }

  /** Progress since the oldest sample in the window (1 when there is nothing to compare with yet). */
  recent(now: number, work: number): number {
    const n = this.times.length;
    for (let k = this.count; k >= 1; k--) {
      const i = (this.head - k + n) % n;
      const span = now - this.times[i];
      if (span <= this.windowUs && span > 0) return Math.max(0, Math.min(1, (work - this.works[i]) / (this.vcpus * span)));
    }
    return 1;
  }
}
