/**
 * The real back end's two clocks (src/real/clock.ts): a CLOCK_MONOTONIC
 * stamp (a native thread's, a guest's) moved onto the agents' clock by
 * monoToNowUs lands between the monotonic reads that bracket it — the
 * causal order the switchover's trace relies on, whatever ran in between.
 */
import { describe, expect, it } from "vitest";
import { monoToNowUs, nowUs } from "../src/real/clock.js";
import { monoUs } from "../src/real/fault-trace-clock.js";

describe("the agents' clock and CLOCK_MONOTONIC", () => {
  it("one offset per process, and a stamp between its two monotonic brackets on the agents' clock", () => {
    const off = monoToNowUs();
    expect(monoToNowUs()).toBe(off);
    for (let i = 0; i < 1000; i++) {
      const a = monoUs();
      const n = nowUs();
      const b = monoUs();
      // nowUs rounds to 1 µs; the offset is exact within half its best bracket (a fraction of that).
      expect(n).toBeGreaterThanOrEqual(a + off - 1);
      expect(n).toBeLessThanOrEqual(b + off + 1);
    }
  });
});
