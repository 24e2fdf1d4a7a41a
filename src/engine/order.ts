/**
 * Post-copy background push order: which page not yet at the destination the
 * source pushes next. Demand faults never wait for this order (they have their
 * own channel); the order decides which faults happen at all.
 */
import type { Bitmap } from "./bitmap.js";
import type { BackgroundOrderName } from "./options.js";

export interface BackgroundOrder {
  /** The next page to push among `pending` (pages not yet sent), or -1 when none is left. */
  next(pending: Bitmap): number;
  /**
   * The pages `next` would give in its next calls, as one run: the first
   * (-1: none left) and, in `runLength`, how many consecutive pages from it
   * (1 to `max`) `next` would return one after another — each taken out of
   * `pending` before the following call, as the sender does. Leaves the order
   * as those calls would.
   */
  nextRun(pending: Bitmap, max: number): number;
  /** The length of the run `nextRun` last returned. */
  readonly runLength: number;
  /** A demand request for `page` arrived: the guest is working there. */
  onFault(page: number): void;
}

/** Ascending page order, wrapping, from where the previous push left off. */
export class LinearOrder implements BackgroundOrder {
  private cursor = 0;
  runLength = 0;
  next(pending: Bitmap): number {
    const p = pending.nextSetWrapping(this.cursor);
    if (p >= 0) this.cursor = p + 1;
    return p;
  }
  nextRun(pending: Bitmap, max: number): number {
    const p = pending.nextSetWrapping(this.cursor);
    if (p < 0) return -1;
    // `next` goes on from p + 1, and past the last page wraps: a run ends at the first page not pending, or the end.
    this.runLength = pending.runFrom(p, max);
    this.cursor = p + this.runLength;
    return p;
  }
  onFault(): void {}
}

interface Run {
  next: number;
  end: number;
}

/**
 * Pages just after recent faults first (most recent fault first), then linear.
 * A guest that faults at p tends to touch p+1, p+2... next, so pushing them
 * ahead turns future faults into pages that are already there.
 */
export class NeighbourhoodOrder implements BackgroundOrder {
  private readonly runs: Run[] = [];
  private readonly linear = new LinearOrder();
  runLength = 0;
  constructor(
    private readonly window: number,
    private readonly maxRuns = 8,
  ) {}

  onFault(page: number): void {
    if (this.window === 0) return;
    this.runs.push({ next: page + 1, end: page + 1 + this.window });
    if (this.runs.length > this.maxRuns) this.runs.shift();
  }

  next(pending: Bitmap): number {
    while (this.runs.length > 0) {
      const run = this.runs[this.runs.length - 1];
      const p = run.next < run.end ? pending.nextSet(run.next) : -1;
      if (p >= 0 && p < run.end) {
        run.next = p + 1;
        return p;
      }
      this.runs.pop();
    }
    return this.linear.next(pending);
  }

  nextRun(pending: Bitmap, max: number): number {
    while (this.runs.length > 0) {
      const run = this.runs[this.runs.length - 1];
      const p = run.next < run.end ? pending.nextSet(run.next) : -1;
      if (p >= 0 && p < run.end) {
        // `next` stays in this run while its pages are pending and before its end.
        this.runLength = pending.runFrom(p, Math.min(max, run.end - p));
        run.next = p + this.runLength;
        return p;
      }
      this.runs.pop();
    }
    const p = this.linear.nextRun(pending, max);
    this.runLength = this.linear.runLength;
    return p;
  }
}

export function makeOrder(name: BackgroundOrderName, prefetchPages: number): BackgroundOrder {
  return name === "linear" ? new LinearOrder() : new NeighbourhoodOrder(prefetchPages);
}
