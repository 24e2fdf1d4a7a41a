/**
 * Protocol properties under adversarial schedules: random guest accesses,
 * message deliveries in any order the channels allow, link outages and
 * cancels, for every mode. fast-check prints the seed and path of a failure
 * and shrinks it to the shortest sequence of steps that shows it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MODES, type MigrationOptions, type Mode } from "../src/engine/index.js";
import { Harness, type Op } from "./support/harness.js";

const PAGES = 24;
/** PPSIM_PROPERTY_RUNS=10 multiplies the runs, for a deeper search than CI's. */
const SCALE = Number(process.env.PPSIM_PROPERTY_RUNS ?? 1);
const runs = (n: number) => ({ numRuns: Math.round(n * SCALE) });

const opArb = (outages: boolean): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant("write" as const), page: fc.nat(PAGES - 1) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("read" as const), page: fc.nat(PAGES - 1) }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant("deliver" as const), pick: fc.nat(3) }) },
    ...(outages
      ? [
          { weight: 1, arbitrary: fc.constant<Op>({ op: "linkDown" }) },
          { weight: 1, arbitrary: fc.constant<Op>({ op: "linkUp" }) },
        ]
      : []),
  );

const optionsArb = fc.record({
  mode: fc.constantFrom<Mode>(...MODES),
  urgentChannel: fc.boolean(),
  backgroundOrder: fc.constantFrom("linear" as const, "neighbourhood" as const),
  hybridRounds: fc.integer({ min: 1, max: 3 }),
  maxRounds: fc.integer({ min: 1, max: 4 }),
  downtimeLimitMs: fc.constantFrom(0.001, 1, 300),
});

function run(options: Partial<MigrationOptions>, ops: Op[]): Harness {
  const h = new Harness(PAGES, options);
  for (const op of ops) h.apply(op);
  h.drain();
  return h;
}

describe("engine protocol properties", () => {
  it("without outages every migration completes and the destination holds exactly the guest's memory", () => {
    fc.assert(
      fc.property(optionsArb, fc.array(opArb(false), { minLength: 30, maxLength: 250 }), (options, ops) => {
        const h = run(options, ops);
        expect(h.srcOutcome).toBe("completed");
        expect(h.dstOutcome).toBe("completed");
        expect(h.mismatches()).toEqual([]);
        expect(h.stalled.size).toBe(0); // every demand fault was served
      }),
      runs(400),
    );
  });

  it("in pure post-copy without outages no page is sent twice", () => {
    fc.assert(
      fc.property(optionsArb, fc.array(opArb(false), { minLength: 30, maxLength: 250 }), (options, ops) => {
        const h = run({ ...options, mode: "postcopy" }, ops);
        expect(Math.max(...h.sendsPerPage)).toBe(1);
        expect(h.source.metrics.pagesResent).toBe(0);
      }),
      runs(300),
    );
  });

  it("with outages: a migration past switchover is recovered without loss or stale pages; one before it leaves the source running", () => {
    fc.assert(
      fc.property(optionsArb, fc.array(opArb(true), { minLength: 30, maxLength: 300 }), (options, ops) => {
        const h = run(options, ops);
        if (h.expected === null) {
          // Failed before switchover: the source guest was never paused.
          expect(h.guestAt).toBe("source");
          expect(h.srcOutcome).toBe("failed");
          return;
        }
        expect(h.srcOutcome).toBe("completed");
        expect(h.dstOutcome).toBe("completed");
        expect(h.mismatches()).toEqual([]);
        expect(h.stalled.size).toBe(0);
      }),
      runs(500),
    );
  });

  it("cancel is honoured before switchover and refused after it", () => {
    fc.assert(
      fc.property(optionsArb, fc.array(opArb(false), { minLength: 10, maxLength: 150 }), (options, ops) => {
        const h = new Harness(PAGES, options);
        for (const op of ops) h.apply(op);
        const committed = h.source.isCommitted;
        h.apply({ op: "cancel" });
        h.drain();
        if (committed) {
          expect(h.refusals).toBe(1);
          expect(h.srcOutcome).toBe("completed");
          expect(h.mismatches()).toEqual([]);
        } else {
          expect(h.srcOutcome).toBe("cancelled");
          expect(h.guestAt).toBe("source");
          expect(h.dstOutcome).toBe("cancelled");
        }
      }),
      runs(300),
    );
  });
});
