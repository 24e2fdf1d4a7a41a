/**
 * Post-copy background push order: which page not yet at the destination the
 * source pushes next. Demand faults never wait for this order (they have their
 * own channel); the order decides which faults happen at all.
 */
import type { PageSet } from "./page-set.js";
import type { BackgroundOrderName } from "./options.js";

export interface BackgroundOrder {
  /** The next page to push among `pending` (pages not yet sent), or -1 when none is left. */
  next(pending: PageSet): number;
  /**
   * The pages `next` would give in its next calls, as one run: the first
   * (-1: none left) and, in `runLength`, how many consecutive pages from it
   * (1 to `max`) `next` would return one after another — each taken out of
   * `pending` before the following call, as the sender does. Leaves the order
   * as those calls would.
   */
  nextRun(pending: PageSet, max: number): number;
  /** The length of the run `nextRun` last returned. */
  readonly runLength: number;
  /** A demand request for `page` arrived: the guest is working there. */
  onFault(page: number): void;
}

/** Ascending page order, wrapping, from where the previous push left off. */
export class LinearOrder implements BackgroundOrder {
  private cursor = 0;
  runLength = 0;
  next(pending: PageSet): number {
    const p = pending.nextSetWrapping(this.cursor);
    if (p >= 0) this.cursor = p + 1;
    return p;
  }
  nextRun(pending: PageSet, max: number): number {
    const p = pending.nextSetWrapping(this.cursor);
    if (p < 0) return -1;
    // `next` goes on from p + 1, and past the last page wraps: a run ends at the first page not pending, or the end.
    this.runLength = pending.runFrom(p, max);
    this.cursor = p + this.runLength;
    return p;
  }
  onFault(): void {}
}

/**
 * Pages just after recent faults first (most recent fault first), then linear.
 * A guest that faults at p tends to touch p+1, p+2... next, so pushing them
 * ahead turns future faults into pages that are already there.
 *
 * The recent faults' runs are a stack of at most `maxRuns` (the oldest falls
 * out), kept in a ring of two typed arrays: every demand request adds one,
 * and an object per request was garbage soon after.
 */
export class NeighbourhoodOrder implements BackgroundOrder {
  /** Per run: the next page to look at and the end (exclusive); the stack's bottom at `base`, `depth` runs. */
  private readonly runNext: Float64Array;
  private readonly runEnd: Float64Array;
  private base = 0;
  private depth = 0;
  private readonly linear = new LinearOrder();
  runLength = 0;
  constructor(
    private readonly window: number,
    private readonly maxRuns = 8,
  ) {
    this.runNext = new Float64Array(Math.max(1, maxRuns));
    this.runEnd = new Float64Array(Math.max(1, maxRuns));
  }

  onFault(page: number): void {
    if (this.window === 0 || this.maxRuns < 1) return;
    const cap = this.runNext.length;
    if (this.depth === this.maxRuns) this.base = (this.base + 1) % cap;
    else this.depth++;
    const top = (this.base + this.depth - 1) % cap;
    this.runNext[top] = page + 1;
    this.runEnd[top] = page + 1 + this.window;
  }

  next(pending: PageSet): number {
    while (this.depth > 0) {
      const top = (this.base + this.depth - 1) % this.runNext.length;
      const end = this.runEnd[top];
      const p = this.runNext[top] < end ? pending.nextSet(this.runNext[top]) : -1;
      if (p >= 0 && p < end) {
        this.runNext[top] = p + 1;
        return p;
      }
      this.depth--;
    }
    return this.linear.next(pending);
  }

  nextRun(pending: PageSet, max: number): number {
    while (this.depth > 0) {
      const top = (this.base + this.depth - 1) % this.runNext.length;
      const end = this.runEnd[top];
      const p = this.runNext[top] < end ? pending.nextSet(this.runNext[top]) : -1;
      if (p >= 0 && p < end) {
        // `next` stays in this run while its pages are pending and before its end.
        this.runLength = pending.runFrom(p, Math.min(max, end - p));
        this.runNext[top] = p + this.runLength;
        return p;
      }
      this.depth--;
    }
    const p = this.linear.nextRun(pending, max);
    this.runLength = this.linear.runLength;
    return p;
  }
}

export function makeOrder(name: BackgroundOrderName, prefetchPages: number): BackgroundOrder {
  return name === "linear" ? new LinearOrder() : new NeighbourhoodOrder(prefetchPages);
}
