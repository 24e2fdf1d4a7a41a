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
  /** A demand request for `page` arrived: the guest is working there. */
  onFault(page: number): void;
}

/** Ascending page order, wrapping, from where the previous push left off. */
export class LinearOrder implements BackgroundOrder {
  private cursor = 0;
  next(pending: Bitmap): number {
    const p = pending.nextSetWrapping(this.cursor);
    if (p >= 0) this.cursor = p + 1;
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
}

export function makeOrder(name: BackgroundOrderName, prefetchPages: number): BackgroundOrder {
  return name === "linear" ? new LinearOrder() : new NeighbourhoodOrder(prefetchPages);
}
