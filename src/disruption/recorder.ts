/**
 * A per-vCPU progress log on a fine clock, like jitterd inside a guest: each
 * vCPU's useful work (in its unmigrated time: µs of work an undisturbed vCPU
 * does in 1 µs) is added into fixed-width time slots. Memory is bounded: when
 * the slots run out, neighbouring pairs merge and the slot width doubles, so
 * a long run keeps its whole history at a coarser resolution.
 */

/** Slot width a log starts with, µs. */
export const DEFAULT_SLOT_US = 100;
/** Slots kept per vCPU before pairs merge. */
export const DEFAULT_SLOTS = 1 << 15;

/** What a log holds once recording stops: enough to derive every disruption figure. */
export interface ProgressTrace {
  /** Width of a slot, µs. */
  slotUs: number;
  /** Recorded span, µs (the last slot may be partial). */
  spanUs: number;
  /** Work a vCPU does per µs when nothing disturbs it (1 in the simulator, steps/µs in the native guest). */
  baselinePerUs: number;
  /** Per vCPU, work done in each slot; every array has ceil(spanUs / slotUs) entries. */
  work: Float64Array[];
}

export class ProgressRecorder {
  private slotUs: number;
  private readonly slots: Float64Array[];
  private used = 0;
  private startUs = 0;
  private recording = false;
  private lastUs = 0;

  constructor(
    readonly vcpus: number,
    readonly baselinePerUs = 1,
    slotUs = DEFAULT_SLOT_US,
    private readonly capacity = DEFAULT_SLOTS,
  ) {
    if (!(slotUs > 0) || capacity < 2 || capacity % 2 !== 0) throw new Error(`progress log: bad slot width ${slotUs} µs or capacity ${capacity}`);
    this.slotUs = slotUs;
    this.slots = Array.from({ length: vcpus }, () => new Float64Array(capacity));
  }

  get active(): boolean {
    return this.recording;
  }

  /** Starts recording at `now` (earlier work is not logged). */
  start(now: number): void {
    this.startUs = now;
    this.lastUs = now;
    this.recording = true;
  }

  /** Stops recording at `now`; later `add`s are ignored. */
  stop(now: number): void {
    if (!this.recording) return;
    this.lastUs = Math.max(this.lastUs, now);
    this.recording = false;
  }

  /** Credits `work` done by vCPU `v` at time `at` (µs). */
  add(v: number, at: number, work: number): void {
    if (!this.recording || at < this.startUs) return;
    let i = Math.floor((at - this.startUs) / this.slotUs);
    while (i >= this.capacity) {
      this.coarsen();
      i = Math.floor((at - this.startUs) / this.slotUs);
    }
    this.slots[v][i] += work;
    if (i >= this.used) this.used = i + 1;
    if (at > this.lastUs) this.lastUs = at;
  }

  /** The log so far (copies; the recorder keeps going). */
  trace(now = this.lastUs): ProgressTrace {
    const spanUs = Math.max(0, (this.recording ? Math.max(now, this.lastUs) : this.lastUs) - this.startUs);
    const n = Math.min(this.capacity, Math.max(this.used, Math.ceil(spanUs / this.slotUs)));
    return { slotUs: this.slotUs, spanUs, baselinePerUs: this.baselinePerUs, work: this.slots.map((s) => s.slice(0, n)) };
  }

  private coarsen(): void {
    const half = this.capacity / 2;
    for (const s of this.slots) {
      for (let i = 0; i < half; i++) s[i] = s[2 * i] + s[2 * i + 1];
      s.fill(0, half);
    }
    this.used = Math.ceil(this.used / 2);
    this.slotUs *= 2;
  }
}
