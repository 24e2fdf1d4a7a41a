/**
 * The point of no return (issue 16): the source may take its VM back until
 * the destination's guest has run. Adversarial schedules with failures at
 * every moment around the switchover — the link breaking before, while and
 * after the switchover travels, the destination decoding garbage, its guest
 * failing to start, timers firing — and the harness checks after every step
 * that two guests never run at once.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MODES, type Mode } from "../src/engine/index.js";
import { Harness, type Op } from "./support/harness.js";

const PAGES = 16;
const SCALE = Number(process.env.PPSIM_PROPERTY_RUNS ?? 1);
const runs = (n: number) => ({ numRuns: Math.round(n * SCALE) });

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant("write" as const), page: fc.nat(PAGES - 1) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant("read" as const), page: fc.nat(PAGES - 1) }) },
  { weight: 8, arbitrary: fc.record({ op: fc.constant("deliver" as const), pick: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.constant<Op>({ op: "pauseDone" }) },
  { weight: 2, arbitrary: fc.constant<Op>({ op: "resumeDone" }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: "resumeFail" }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: "destMalformed" }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: "linkDown" }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: "linkUp" }) },
  { weight: 1, arbitrary: fc.constant<Op>({ op: "timer" }) },
);

const optionsArb = fc.record({
  mode: fc.constantFrom<Mode>(...MODES),
  urgentChannel: fc.boolean(),
  maxRounds: fc.integer({ min: 1, max: 3 }),
  downtimeLimitMs: fc.constantFrom(0.001, 300),
  setupTimeoutMs: fc.constant(50),
  reconnectTimeoutMs: fc.constant(100),
});

/** Drains, then fires deadlines until both sides have ended (or nothing is left to fire). */
function settle(h: Harness): void {
  h.drain();
  for (let i = 0; i < 20 && !(h.source.finished && h.dest.finished); i++) {
    h.apply({ op: "linkDown" });
    h.apply({ op: "timer" });
    h.apply({ op: "timer" });
  }
}

describe("the point of no return", () => {
  it("any failure before the destination's guest runs leaves exactly one running guest, the source's", () => {
    fc.assert(
      fc.property(optionsArb, fc.integer({ min: 1, max: 3 }), fc.array(opArb, { minLength: 20, maxLength: 200 }), (options, window, ops) => {
        const h = new Harness(PAGES, options, 3, window);
        for (const op of ops) h.apply(op);
        settle(h);
        expect(h.violations).toEqual([]);
        const cause = h.source.metrics.cause;
        if (h.destRan) {
          // Past the point of no return the source never took its guest back.
          expect(cause).not.toBe("resumed-at-source");
          expect(h.guestAt).toBe("dest");
          return;
        }
        if (h.source.metrics.reason.includes("whether the destination guest ran is unknown")) {
          // The one undecidable case: the switchover went out, the link never came back in time. At most one guest runs.
          expect(cause).toBe("reconnect-timeout");
          expect(h.guestAt === "source").toBe(false);
          return;
        }
        expect(h.srcOutcome).not.toBe("completed");
        expect(h.guestAt).toBe("source");
        if (h.source.metrics.pausedAt !== null) expect(cause).toBe("resumed-at-source");
      }),
      runs(400),
    );
  });

  it("a destination whose guest cannot start hands the VM back: the source resumes and says the migration failed, not lost", () => {
    for (const mode of MODES) {
      const h = new Harness(PAGES, { mode, downtimeLimitMs: 300 }, 3, 3);
      for (let i = 0; i < 10_000 && h.guestAt !== "resuming"; i++) {
        if (h.guestAt === "pausing") h.apply({ op: "pauseDone" });
        else h.apply({ op: "deliver", pick: i });
      }
      expect(h.guestAt).toBe("resuming");
      h.apply({ op: "resumeFail" });
      h.drain();
      expect(h.violations).toEqual([]);
      expect(h.guestAt).toBe("source");
      expect(h.srcOutcome).toBe("failed");
      expect(h.source.metrics.cause).toBe("resumed-at-source");
      expect(h.source.metrics.reason).toMatch(/could not start its guest.*failed, not lost/);
      expect(h.dest.metrics.phase).toBe("failed");
    }
  });
});
