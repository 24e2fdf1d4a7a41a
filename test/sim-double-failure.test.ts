/**
 * Double failures in the simulator: past the switchover the link goes down,
 * comes back, and goes down again before the destination's recover can have
 * arrived (less than one latency later: the recovery handshake), then once
 * more just after the source can have taken it (the resend). Every run must
 * complete with the destination's memory verified. The switchover's time
 * comes from a first run without outages (a run does not depend on how it
 * is stepped, so the second run is the same up to there).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Simulation, type Outage, type SimConfig } from "../src/sim/simulation.js";
import { parseWorkload } from "../src/workload/parse.js";

const SCALE = Number(process.env.PPSIM_PROPERTY_RUNS ?? 1);
const runs = (n: number) => ({ numRuns: Math.round(n * SCALE) });

const workload = (pages: number, writeShare: number, vcpus: number) =>
  parseWorkload({
    ppsim_workload: 1,
    name: "random",
    memory: pages * 4096,
    page_size: 4096,
    vcpus,
    zero_share: 0.2,
    warmup_ms: 5,
    phases: [{ steps: 20_000, compute_ns: 5_000, write_share: writeShare, pattern: { kind: "uniform" } }],
  });

/** Virtual ms from the migration start at which the destination guest runs, stepping 0.1 ms at a time. */
function resumeAt(cfg: SimConfig): number | null {
  const sim = new Simulation(cfg);
  for (let t = 0; t < 60_000; t += 0.1) {
    sim.advanceTo(t);
    const phase = sim.snapshot().phase;
    if (phase === "postcopy") return t;
    if (sim.done) return null;
  }
  return null;
}

describe("double failures in the simulator", () => {
  it("a link that breaks again during the recovery handshake, and again during the resend, still recovers and verifies", () => {
    fc.assert(
      fc.property(
        fc.record({
          pages: fc.integer({ min: 64, max: 400 }),
          writeShare: fc.integer({ min: 0, max: 100 }).map((x) => x / 100),
          vcpus: fc.integer({ min: 1, max: 3 }),
          mode: fc.constantFrom("postcopy" as const, "hybrid" as const),
          latencyUs: fc.integer({ min: 200, max: 2000 }),
          sharedChannel: fc.boolean(),
          seed: fc.nat(1000),
        }),
        fc.integer({ min: 0, max: 3_000 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 3, maxLength: 3 }),
        fc.integer({ min: 0, max: 99 }),
        fc.integer({ min: 1, max: 99 }),
        (c, firstAfterUs, durationsMs, handshakeShare, resendShare) => {
          const base: SimConfig = {
            workload: workload(c.pages, c.writeShare, c.vcpus),
            options: { mode: c.mode, hybridRounds: 1 },
            link: { bandwidthBytesPerSec: 10e6, latencyUs: c.latencyUs, sharedChannel: c.sharedChannel },
            seed: c.seed,
          };
          const t0 = resumeAt(base);
          fc.pre(t0 !== null);
          const lat = c.latencyUs / 1000;
          const first: Outage = { atMs: (t0 as number) + firstAfterUs / 1000, durationMs: durationsMs[0] };
          // Down again before the recover (sent at link-up) can arrive: within one latency.
          const second: Outage = { atMs: first.atMs + first.durationMs + (lat * handshakeShare) / 100, durationMs: durationsMs[1] };
          // And again once the recover has arrived and the source re-sends: past one latency, within two.
          const third: Outage = { atMs: second.atMs + second.durationMs + lat + (lat * resendShare) / 100, durationMs: durationsMs[2] };
          const sim = new Simulation({ ...base, outages: [first, second, third] });
          const report = sim.runToEnd();
          if (report.outcome === "completed" && report.total_ms < first.atMs) return; // done before the first cut
          expect(report.outcome, report.reason).toBe("completed");
          expect(report.verified).toBe(true);
          expect(sim.verify()).toEqual({ ok: true, mismatches: 0 });
          expect(report.recoveries).toBeGreaterThanOrEqual(1);
        },
      ),
      runs(60),
    );
  });
});
