/**
 * Double failures (issue 16, after QEMU's tests of failures at the handshake
 * and at reconnect): past the switchover the link breaks, and breaks again
 * while the destination's recover is on its way (the recovery handshake),
 * and again while the source re-sends what the recover said was missing.
 * The migration must still complete with the destination's memory exactly
 * the guest's. The guest keeps reading and writing throughout.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MODES, type Mode } from "../src/engine/index.js";
import { Harness, type Op } from "./support/harness.js";

const PAGES = 24;
const SCALE = Number(process.env.PPSIM_PROPERTY_RUNS ?? 1);
const runs = (n: number) => ({ numRuns: Math.round(n * SCALE) });

const accessArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant("write" as const), page: fc.nat(PAGES - 1) }),
  fc.record({ op: fc.constant("read" as const), page: fc.nat(PAGES - 1) }),
);
const stepArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: accessArb },
  { weight: 4, arbitrary: fc.record({ op: fc.constant("deliver" as const), pick: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: "pauseDone" }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: "resumeDone" }) },
);

const optionsArb = fc.record({
  mode: fc.constantFrom<Mode>(...MODES),
  urgentChannel: fc.boolean(),
  maxRounds: fc.integer({ min: 1, max: 3 }),
  hybridRounds: fc.integer({ min: 1, max: 2 }),
  downtimeLimitMs: fc.constantFrom(0.001, 300),
});

function cut(h: Harness): void {
  h.apply({ op: "linkDown" });
  h.apply({ op: "linkUp" });
}

describe("double failures", () => {
  it("a link that breaks again during the recovery handshake, and again during the resend, still recovers", () => {
    fc.assert(
      fc.property(
        optionsArb,
        fc.integer({ min: 1, max: 4 }),
        fc.array(stepArb, { minLength: 5, maxLength: 120 }),
        fc.array(accessArb, { maxLength: 6 }),
        fc.integer({ min: 0, max: 6 }),
        fc.array(accessArb, { maxLength: 6 }),
        (options, window, before, duringHandshake, resent, duringResend) => {
          const h = new Harness(PAGES, options, 3, window);
          for (const op of before) h.apply(op);
          // On to the point where the destination guest runs.
          for (let i = 0; i < 10_000 && !h.destRan && h.srcOutcome === null; i++) {
            if (h.guestAt === "pausing") h.apply({ op: "pauseDone" });
            else if (h.guestAt === "resuming") h.apply({ op: "resumeDone" });
            else h.apply({ op: "deliver", pick: i });
          }
          fc.pre(h.destRan && h.srcOutcome === null);
          cut(h); // the first failure
          expect(h.inFlight("toSrc", "recover")).toBe(true);
          for (const op of duringHandshake) h.apply(op);
          cut(h); // the second: the recover never reached the source
          expect(h.inFlight("toSrc", "recover")).toBe(true);
          while (h.inFlight("toSrc", "recover")) h.deliverFrom("toSrc");
          for (let i = 0; i < resent; i++) h.deliverFrom("toDest");
          for (const op of duringResend) h.apply(op);
          cut(h); // the third: in the middle of the resend
          h.drain();
          expect(h.violations).toEqual([]);
          expect(h.srcOutcome).toBe("completed");
          expect(h.dstOutcome).toBe("completed");
          expect(h.mismatches()).toEqual([]);
          expect(h.stalled.size).toBe(0);
          expect(h.source.metrics.recoveries).toBe(2);
        },
      ),
      runs(300),
    );
  });
});
