/**
 * NeighbourhoodOrder's recent-fault runs in a ring of typed arrays
 * (src/engine/order.ts) against the array of run objects it replaced: the
 * same pages in the same order, through faults between pulls, a full stack
 * whose oldest run falls out, `next` and `nextRun` mixed.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Bitmap } from "../src/engine/bitmap.js";
import { LinearOrder, NeighbourhoodOrder } from "../src/engine/order.js";

/** The previous implementation, kept here as the reference. */
class ArrayNeighbourhood {
  private readonly runs: { next: number; end: number }[] = [];
  private readonly linear = new LinearOrder();
  runLength = 0;
  constructor(
    private readonly window: number,
    private readonly maxRuns: number,
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

type Op = { kind: "fault"; page: number } | { kind: "next" } | { kind: "run"; max: number };
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("fault" as const), page: fc.nat(299) }),
  fc.record({ kind: fc.constant("next" as const) }),
  fc.record({ kind: fc.constant("run" as const), max: fc.integer({ min: 1, max: 20 }) }),
);

describe("NeighbourhoodOrder's ring of recent faults", () => {
  it("gives the pages the array of run objects gave", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 12 }), fc.integer({ min: -1, max: 5 }), fc.array(op, { maxLength: 300 }), (window, maxRuns, ops) => {
        const a = new Bitmap(300);
        const b = new Bitmap(300);
        a.fill();
        b.fill();
        const ring = new NeighbourhoodOrder(window, maxRuns);
        const ref = new ArrayNeighbourhood(window, maxRuns);
        for (const o of ops) {
          if (o.kind === "fault") {
            ring.onFault(o.page);
            ref.onFault(o.page);
          } else if (o.kind === "next") {
            const p = ring.next(a);
            expect(p).toBe(ref.next(b));
            if (p >= 0) {
              a.clear(p);
              b.clear(p);
            }
          } else {
            const p = ring.nextRun(a, o.max);
            expect(p).toBe(ref.nextRun(b, o.max));
            if (p >= 0) {
              expect(ring.runLength).toBe(ref.runLength);
              for (let k = 0; k < ring.runLength; k++) {
                a.clear(p + k);
                b.clear(p + k);
              }
            }
          }
        }
      }),
      { seed: 1416, numRuns: 300 },
    );
  });
});
