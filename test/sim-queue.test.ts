import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { EventQueue } from "../src/sim/event-queue.js";

function drain<E>(q: EventQueue<E>): [number, E][] {
  const out: [number, E][] = [];
  for (let e = q.pop(); e !== undefined; e = q.pop()) out.push([e.time, e.event]);
  return out;
}

describe("event queue", () => {
  it("pops by time, and events at one time in insertion order", () => {
    const q = new EventQueue<string>();
    q.push(5, "a");
    q.push(1, "b");
    q.push(5, "c");
    q.push(3, "d");
    q.push(1, "e");
    expect(q.peekTime()).toBe(1);
    expect(drain(q)).toEqual([[1, "b"], [1, "e"], [3, "d"], [5, "a"], [5, "c"]]);
    expect(q.peekTime()).toBe(Infinity);
    expect(q.pop()).toBeUndefined();
  });

  it("matches a stable sort for any interleaving of pushes and pops", () => {
    fc.assert(
      fc.property(fc.array(fc.option(fc.integer({ min: 0, max: 20 }), { nil: null }), { maxLength: 300 }), (ops) => {
        const q = new EventQueue<number>();
        let pending: [number, number][] = [];
        let id = 0;
        for (const op of ops) {
          if (op === null) {
            const got = q.pop();
            pending.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
            const want = pending.shift();
            expect(got && [got.time, got.event]).toEqual(want);
          } else {
            q.push(op, id);
            pending.push([op, id++]);
          }
        }
        pending = pending.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        expect(drain(q)).toEqual(pending);
        expect(q.size).toBe(0);
      }),
    );
  });

  it("refuses a NaN time", () => {
    expect(() => new EventQueue<number>().push(NaN, 1)).toThrow(/NaN/);
  });
});
