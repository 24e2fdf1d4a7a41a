import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ProgressRecorder } from "../src/disruption/recorder.js";

/** The guest's access loop's way of crediting (src/sim/guest.ts): addHolding, then straight into the held slot. */
function creditHolding(rec: ProgressRecorder, v: number, steps: readonly [number, number][]): void {
  const slots = rec.slotsOf(v);
  let hi = -Infinity;
  let slot = 0;
  let last = -Infinity;
  for (const [at, work] of steps) {
    if (at <= hi) {
      slots[slot] += work;
      last = at;
    } else {
      hi = rec.addHolding(v, at, work);
      slot = rec.heldSlot;
    }
  }
  rec.reach(last);
}

describe("ProgressRecorder.addHolding", () => {
  it("gives bit for bit the log that add gives, across slot ends and coarsening", () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0.01, max: 50, noNaN: true }),
        fc.double({ min: -100, max: 1000, noNaN: true }),
        fc.array(fc.array(fc.tuple(fc.double({ min: 0, max: 300, noNaN: true }), fc.double({ min: 0, max: 5, noNaN: true })), { maxLength: 60 }), { minLength: 1, maxLength: 3 }),
        (slotUs, startUs, runs) => {
          const plain = new ProgressRecorder(2, 1, slotUs, 8);
          const held = new ProgressRecorder(2, 1, slotUs, 8);
          plain.start(startUs);
          held.start(startUs);
          let at = startUs - 50;
          runs.forEach((run, r) => {
            const v = r % 2;
            const steps = run.map(([gap, work]): [number, number] => [(at += gap), work]);
            for (const [t, w] of steps) plain.add(v, t, w);
            creditHolding(held, v, steps);
          });
          const a = plain.trace();
          const b = held.trace();
          expect(b.slotUs).toBe(a.slotUs);
          expect(b.spanUs).toBe(a.spanUs);
          expect(b.work.map((w) => Array.from(w))).toEqual(a.work.map((w) => Array.from(w)));
        },
      ),
      { seed: 14, numRuns: 400 },
    );
  });

  it("holds a slot only as far as add would still credit it", () => {
    const rec = new ProgressRecorder(1, 1, 0.1, 8);
    rec.start(0.3);
    const hi = rec.addHolding(0, 0.35, 1);
    expect(Math.floor((hi - 0.3) / 0.1)).toBe(rec.heldSlot);
    expect(hi).toBeGreaterThanOrEqual(0.35);
    expect(rec.addHolding(0, 0.2, 1)).toBe(-Infinity);
  });
});
