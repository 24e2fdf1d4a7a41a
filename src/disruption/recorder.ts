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

  /**
   * As `add`, for a caller crediting one vCPU's works in time order (the
   * simulated guest's access loop): returns the latest time known to fall
   * in the slot it credited (−Infinity when it credited nothing). Until
   * then the caller may add straight into `slotsOf(v)[heldSlot]` and report
   * its last time with `reach`: the same sums in the same order as `add`,
   * without a division per access.
   */
  addHolding(v: number, at: number, work: number): number {
    if (!this.recording || at < this.startUs) return -Infinity;
    this.add(v, at, work);
    const i = Math.floor((at - this.startUs) / this.slotUs);
    this.heldSlot = i;
    // The slot index is monotone in `at` (subtraction and division round
    // monotonically), so a time past `at` whose index is still i bounds a
    // range that is all in slot i. The slot's nominal end may round into
    // the next one; a hair below it is tried, else only `at` is known.
    const end = this.startUs + (i + 1) * this.slotUs;
    if (this.inSlot(end, at, i)) return end;
    const below = end - this.slotUs * 1e-9;
    return this.inSlot(below, at, i) ? below : at;
  }

  private inSlot(time: number, from: number, i: number): boolean {
    return time >= from && Math.floor((time - this.startUs) / this.slotUs) === i;
  }

  /** The slot `addHolding` credited last. */
  heldSlot = 0;

  /** vCPU v's slots (the same array for the whole log: coarsening merges in place). */
  slotsOf(v: number): Float64Array {
    return this.slots[v];
  }

  /** Work was credited up to `at` outside `add` (see `addHolding`). */
  reach(at: number): void {
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
