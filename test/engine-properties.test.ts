/**
 * Protocol properties under adversarial schedules: random guest accesses,
 * message deliveries in any order the lanes allow, pauses that complete late,
 * time that moves (the bandwidth cap, timers), link outages and cancels, for
 * every mode. The harness checks its invariants after every step; fast-check
 * prints the seed and path of a failure and shrinks it to the shortest
 * sequence of steps that shows it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MODES, type MigrationOptions, type Mode } from "../src/engine/index.js";
import { Harness, type Op } from "./support/harness.js";

const PAGES = 24;
/** PPSIM_PROPERTY_RUNS=10 multiplies the runs, for a deeper search than CI's. */
const SCALE = Number(process.env.PPSIM_PROPERTY_RUNS ?? 1);
const runs = (n: number) => ({ numRuns: Math.round(n * SCALE) });

const opArb = (outages: boolean, timers = false): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant("write" as const), page: fc.nat(PAGES - 1) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("read" as const), page: fc.nat(PAGES - 1) }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant("deliver" as const), pick: fc.nat(3) }) },
    { weight: 2, arbitrary: fc.constant<Op>({ op: "pauseDone" }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("wait" as const), us: fc.integer({ min: 1, max: 200_000 }) }) },
    ...(timers ? [{ weight: 1, arbitrary: fc.constant<Op>({ op: "timer" }) }] : []),
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
  // 0: no cap; else a few pages per virtual second, so the pacer holds pages back between steps.
  bandwidthCap: fc.constantFrom(0, 0, 20_000, 200_000),
});

const windowArb = fc.integer({ min: 1, max: 4 });

function run(options: Partial<MigrationOptions>, ops: Op[], window: number, clockOrigin = 0): Harness {
  const h = new Harness(PAGES, options, 3, window, clockOrigin);
  for (const op of ops) h.apply(op);
  h.drain();
  return h;
}

describe("engine protocol properties", () => {
  it("without outages every migration completes and the destination holds exactly the guest's memory", () => {
    fc.assert(
      fc.property(optionsArb, windowArb, fc.array(opArb(false), { minLength: 30, maxLength: 250 }), (options, window, ops) => {
        const h = run(options, ops, window);
        expect(h.violations).toEqual([]);
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
      fc.property(optionsArb, windowArb, fc.array(opArb(false), { minLength: 30, maxLength: 250 }), (options, window, ops) => {
        const h = run({ ...options, mode: "postcopy" }, ops, window);
        expect(h.violations).toEqual([]);
        expect(Math.max(...h.sendsPerPage)).toBe(1);
        expect(h.source.metrics.pagesResent).toBe(0);
      }),
      runs(300),
    );
  });

  it("with outages: a migration past switchover is recovered without loss or stale pages; one before it leaves the source running", () => {
    fc.assert(
      fc.property(optionsArb, windowArb, fc.array(opArb(true), { minLength: 30, maxLength: 300 }), (options, window, ops) => {
        const h = run(options, ops, window);
        expect(h.violations).toEqual([]);
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

  it("with timers firing (setup and reconnect deadlines) nothing is ever corrupted, and a run that ends in time completes", () => {
    fc.assert(
      fc.property(optionsArb, windowArb, fc.array(opArb(true, true), { minLength: 30, maxLength: 300 }), (options, window, ops) => {
        const h = run({ ...options, setupTimeoutMs: 50, reconnectTimeoutMs: 100 }, ops, window);
        expect(h.violations).toEqual([]);
        const cause = h.source.metrics.cause;
        if (h.expected === null) {
          expect(h.guestAt).toBe("source");
          return;
        }
        if (cause === "reconnect-timeout" || cause === "vm-lost" || h.dest.metrics.phase === "failed") {
          // Given up after switchover: the source keeps every page; what the destination shows is current.
          expect(h.srcOutcome === "failed" || h.dstOutcome === "failed").toBe(true);
          return;
        }
        expect(h.srcOutcome).toBe("completed");
        expect(h.mismatches()).toEqual([]);
      }),
      runs(300),
    );
  });

  it("cancel is honoured before switchover and refused after it", () => {
    fc.assert(
      fc.property(optionsArb, windowArb, fc.array(opArb(false), { minLength: 10, maxLength: 150 }), (options, window, ops) => {
        const h = new Harness(PAGES, options, 3, window);
        for (const op of ops) h.apply(op);
        const committed = h.source.isCommitted;
        h.apply({ op: "cancel" });
        h.drain();
        expect(h.violations).toEqual([]);
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

  it("the bandwidth cap is honoured: background bytes never run ahead of the token bucket", () => {
    fc.assert(
      fc.property(fc.constantFrom<Mode>(...MODES), fc.integer({ min: 10_000, max: 1_000_000 }), (mode, cap) => {
        const h = new Harness(PAGES, { mode, bandwidthCap: cap, downtimeLimitMs: 300 }, 3, 2);
        const t0 = h.now;
        h.drain();
        expect(h.violations).toEqual([]);
        expect(h.srcOutcome).toBe("completed");
        const m = h.source.metrics;
        const paced = m.rounds.reduce((a, r) => a + r.bytes, 0) + m.postcopyBulkBytes;
        const burst = h.opts.laneWindowBytes + 2 * (4096 + 5) + 4;
        // Every paced byte beyond one burst waited for its tokens.
        expect(paced).toBeLessThanOrEqual(burst + ((h.now - t0) / 1e6) * cap + 1);
      }),
      runs(60),
    );
  });

  // The real driver's clock is wall time in µs (~1.8e15); the simulator's and
  // these tests' start at 0. Issue 9's pre-copy that would not switch over with
  // 5 pages left was this: the old bandwidth estimate's "last transmit" started
  // at time 0, so on the real clock its first interval was the whole epoch and
  // the estimate ~4e-7 bytes/µs. Nothing the engine decides may depend on where
  // the clock starts.
  it("decisions do not depend on where the clock starts", () => {
    const origin = 1_796_127_122_963_920; // a wall-clock µs value from a real run
    fc.assert(
      fc.property(optionsArb, windowArb, fc.array(opArb(true, true), { minLength: 30, maxLength: 250 }), (options, window, ops) => {
        const a = run(options, ops, window);
        const b = run(options, ops, window, origin);
        expect(b.sent).toEqual(a.sent);
        expect([b.srcOutcome, b.dstOutcome]).toEqual([a.srcOutcome, a.dstOutcome]);
        const ma = a.source.metrics;
        const mb = b.source.metrics;
        expect([mb.rounds.length, mb.switchoverReason, mb.throttle]).toEqual([ma.rounds.length, ma.switchoverReason, ma.throttle]);
      }),
      runs(200),
    );
  });
});
