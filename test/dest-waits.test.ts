/**
 * The destination's waiting books in typed arrays (src/engine/dest-waits.ts)
 * against the Map of pages to waiter lists they replaced: the same pages, the
 * same waiters in the same order, the same order of pages, through adds,
 * joins and removals that reuse slots, records and table cells and grow the
 * table (pages near each other and far apart, so probe chains wrap and the
 * backward shift of a removal is exercised).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EMPTY, PageWaits } from "../src/engine/dest-waits.js";

type Op = { kind: "fault"; page: number; vcpu: number; at: number } | { kind: "arrive"; page: number };

/** Pages from a few clusters (neighbours collide in the table's probe chains) and the whole 32-bit range. */
const page = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 40 }), weight: 4 },
  { arbitrary: fc.integer({ min: 1000, max: 1100 }), weight: 2 },
  { arbitrary: fc.integer({ min: 0, max: 0xffffffff }), weight: 1 },
);
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant("fault" as const), page, vcpu: fc.integer({ min: 0, max: 70 }), at: fc.integer({ min: 0, max: 1e9 }) }),
  fc.record({ kind: fc.constant("arrive" as const), page }),
);

function waitersOf(w: PageWaits, slot: number): { vcpu: number; at: number }[] {
  const out: { vcpu: number; at: number }[] = [];
  for (let r = w.firstWaiter(slot); r !== EMPTY; r = w.nextWaiter(r)) out.push({ vcpu: w.waiterVcpu(r), at: w.waiterAt(r) });
  return out;
}

describe("PageWaits", () => {
  it("keeps the books a Map of waiter lists keeps", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 1500 }), (ops) => {
        const model = new Map<number, { vcpu: number; at: number }[]>();
        const w = new PageWaits();
        for (const o of ops) {
          const slot = w.find(o.page);
          expect(slot !== EMPTY).toBe(model.has(o.page));
          if (o.kind === "fault") {
            const list = model.get(o.page);
            if (list === undefined) {
              model.set(o.page, [{ vcpu: o.vcpu, at: o.at }]);
              w.add(o.page, o.vcpu, o.at);
            } else {
              list.push({ vcpu: o.vcpu, at: o.at });
              w.join(slot, o.vcpu, o.at);
            }
          } else if (slot !== EMPTY) {
            const list = model.get(o.page)!;
            expect(waitersOf(w, slot)).toEqual(list);
            expect(w.firstFaultAt(slot)).toBe(list[0].at);
            model.delete(o.page);
            w.remove(slot);
          }
          expect(w.size).toBe(model.size);
        }
        expect(w.pages()).toEqual([...model.keys()]);
        for (const [p, list] of model) expect(waitersOf(w, w.find(p))).toEqual(list);
      }),
      { seed: 1414, numRuns: 200 },
    );
  });

  it("finds every page after removals in any order from a probe chain that wraps round the table", () => {
    // Pages whose hash homes them in the last cells of the first table (16 cells: the top 4 bits of the
    // Fibonacci hash, as dest-waits.ts computes it), so that their chain wraps to the first cells.
    const homeOf = (p: number) => Math.imul(p, 0x9e3779b1) >>> 28;
    const chain: number[] = [];
    for (let p = 0; chain.length < 7; p++) if (homeOf(p) >= 14 || (homeOf(p) === 0 && chain.length % 3 === 0)) chain.push(p);
    fc.assert(
      fc.property(fc.shuffledSubarray(chain, { minLength: 7, maxLength: 7 }), fc.shuffledSubarray(chain), (added, removed) => {
        const w = new PageWaits();
        added.forEach((p, i) => w.add(p, i, i));
        for (const p of removed) w.remove(w.find(p));
        for (const p of chain) {
          const slot = w.find(p);
          if (removed.includes(p)) expect(slot).toBe(EMPTY);
          else expect(waitersOf(w, slot)).toEqual([{ vcpu: added.indexOf(p), at: added.indexOf(p) }]);
        }
        expect(w.pages()).toEqual(added.filter((p) => !removed.includes(p)));
      }),
      { seed: 1415, numRuns: 300 },
    );
  });

  it("stays correct when thousands of pages wait at once and then leave in another order", () => {
    const w = new PageWaits();
    const pages = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 100_003);
    pages.forEach((p, i) => w.add(p, i % 64, i));
    expect(w.size).toBe(5000);
    for (let i = 0; i < pages.length; i += 2) w.remove(w.find(pages[i]));
    for (let i = 0; i < pages.length; i++) {
      const slot = w.find(pages[i]);
      if (i % 2 === 0) expect(slot).toBe(EMPTY);
      else expect(waitersOf(w, slot)).toEqual([{ vcpu: i % 64, at: i }]);
    }
    expect(w.pages()).toEqual(pages.filter((_, i) => i % 2 === 1));
  });
});
