/**
 * The standby copy's plan after switchover (src/engine/standby.ts): pages the
 * destination says it holds are not written, and the unprotected window
 * closes exactly when every page the destination lacked is written or held —
 * where the copy (top down) and the push (bottom up) meet.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Bitmap } from "../src/engine/bitmap.js";
import { StandbyPlan } from "../src/engine/standby.js";

const PAGES = 200;

function atSwitchover(lacking: number[]): StandbyPlan {
  const plan = new StandbyPlan(PAGES, { batchPages: 8, maxInFlight: 2 }, false);
  const l = new Bitmap(PAGES);
  for (const p of lacking) l.set(p);
  plan.atSwitchover(l, 1000);
  const mark = plan.next();
  expect(mark?.kind).toBe("mark");
  plan.written(mark!.seq, 1001);
  return plan;
}

describe("standby plan: pages the destination holds", () => {
  it("a push from the bottom and a copy from the top meet: the window closes with the copy half written", () => {
    const plan = atSwitchover(Array.from({ length: PAGES }, (_, p) => p));
    let now = 2000;
    let pushed = 0;
    while (plan.figures.protectedAt === null) {
      const op = plan.next();
      if (op?.kind === "pages") plan.written(op.seq, ++now);
      // The destination reports the next 8 pushed pages after every write.
      plan.held(Uint32Array.from({ length: 8 }, (_, i) => pushed + i), ++now);
      pushed += 8;
    }
    expect(plan.figures.pagesWritten + plan.figures.heldByDestination).toBe(PAGES);
    expect(plan.figures.heldByDestination).toBeGreaterThan(PAGES / 3);
    expect(plan.figures.pagesWritten).toBeGreaterThan(PAGES / 3);
    expect(plan.stillNeeded).toBe(0);
  });

  it("property: held pages are never written afterwards, and the window closes exactly when written ∪ held covers the lacking pages", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: PAGES - 1 }), { minLength: 1, maxLength: PAGES }),
        fc.array(fc.oneof(fc.constant<"write">("write"), fc.uniqueArray(fc.integer({ min: 0, max: PAGES + 5 }), { maxLength: 20 })), { maxLength: 80 }),
        (lacking, steps) => {
          const plan = atSwitchover(lacking);
          const held = new Set<number>();
          const written = new Set<number>();
          const inFlight: { seq: number; pages: Uint32Array }[] = [];
          let now = 2000;
          for (const s of steps) {
            now++;
            if (s === "write") {
              const op = plan.next();
              if (op?.kind === "pages") {
                // A page the destination already holds is never chosen for the copy.
                for (const p of op.pages) expect(held.has(p)).toBe(false);
                inFlight.push({ seq: op.seq, pages: op.pages });
              }
              const done = inFlight.shift();
              if (done !== undefined) {
                plan.written(done.seq, now);
                for (const p of done.pages) written.add(p);
              }
            } else {
              plan.held(Uint32Array.from(s), now);
              for (const p of s) held.add(p);
            }
            const covered = lacking.every((p) => written.has(p) || held.has(p));
            expect(plan.figures.protectedAt !== null).toBe(covered);
          }
        },
      ),
      { numRuns: 200 },
    );
  });
});
