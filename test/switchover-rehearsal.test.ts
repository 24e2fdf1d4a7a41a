import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { resolveOptions } from "../src/engine/options.js";
import { MODES } from "../src/engine/messages.js";
import { rehearsalWanted, rehearseSwitchover } from "../src/real/switchover-rehearsal.js";

describe("the switchover rehearsal (switchover-rehearsal.ts)", () => {
  it("takes both engines through the switchover to completion in every mode", () => {
    for (const mode of MODES) {
      const r = rehearseSwitchover(resolveOptions({ mode }), 4096);
      expect(r, mode).toMatchObject({ completed: true, switchedOver: true });
      expect(r.turns).toBeLessThan(200);
    }
  });

  it("completes for any power-of-two page size and again on a second run (nothing kept between runs)", () => {
    fc.assert(
      fc.property(fc.constantFrom(...MODES), fc.integer({ min: 9, max: 16 }), (mode, shift) => {
        const opts = resolveOptions({ mode });
        const a = rehearseSwitchover(opts, 2 ** shift);
        const b = rehearseSwitchover(opts, 2 ** shift);
        expect(a).toEqual(b);
        expect(a.completed && a.switchedOver).toBe(true);
      }),
      { numRuns: 20 },
    );
  });

  it("is on unless PPSIM_SWITCHOVER_REHEARSAL=0", () => {
    const old = process.env.PPSIM_SWITCHOVER_REHEARSAL;
    try {
      delete process.env.PPSIM_SWITCHOVER_REHEARSAL;
      expect(rehearsalWanted()).toBe(true);
      process.env.PPSIM_SWITCHOVER_REHEARSAL = "0";
      expect(rehearsalWanted()).toBe(false);
    } finally {
      if (old === undefined) delete process.env.PPSIM_SWITCHOVER_REHEARSAL;
      else process.env.PPSIM_SWITCHOVER_REHEARSAL = old;
    }
  });
});
