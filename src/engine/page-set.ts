/**
 * The read side of a set of page numbers, as the background orders and the
 * sender walk it; and the set of pages a bitmap does not hold, as a view.
 *
 * Why a view: from the switchover on (and through pre-copy's rounds) the
 * source's pending pages are exactly the pages whose current copy the
 * destination lacks, the complement of the ledger's "sent". Made as a
 * bitmap of its own, that complement cost an allocation and a pass over
 * every word of the guest inside the downtime (0.2 ms at 8 GiB, 0.6 ms at
 * 64 GiB: bench/switchover-engine.ts), and then had to be kept in step with
 * "sent" on every booking. The view costs nothing to make and answers from
 * "sent" itself, so it cannot drift from it.
 */
import type { Bitmap } from "./bitmap.js";

export interface PageSet {
  readonly size: number;
  readonly count: number;
  has(i: number): boolean;
  /** The first page of the set at or after `from`, or -1. */
  nextSet(from: number): number;
  /** The same, wrapping to the start; -1 when empty. */
  nextSetWrapping(from: number): number;
  /** How many pages from `from` (one of the set) on are in the set in a row, at most `max`. */
  runFrom(from: number, max: number): number;
  [Symbol.iterator](): IterableIterator<number>;
}

/** The pages `of` does not hold, live: every change to `of` shows here at once. */
export class Complement implements PageSet {
  constructor(private readonly of: Bitmap) {}

  get size(): number {
    return this.of.size;
  }

  get count(): number {
    return this.of.size - this.of.count;
  }

  has(i: number): boolean {
    return i < this.of.size && !this.of.has(i);
  }

  nextSet(from: number): number {
    return this.of.nextClear(from);
  }

  nextSetWrapping(from: number): number {
    if (this.count === 0) return -1;
    const i = this.of.nextClear(from);
    return i >= 0 ? i : this.of.nextClear(0);
  }

  runFrom(from: number, max: number): number {
    return this.of.clearRunFrom(from, max);
  }

  *[Symbol.iterator](): IterableIterator<number> {
    for (let i = this.of.nextClear(0); i >= 0; i = this.of.nextClear(i + 1)) yield i;
  }
}
