/**
 * The standby copy in the simulator (issue 16): a source that dies after
 * switchover once the copy holds every page the destination lacked never
 * loses the VM — the destination fills the missing pages from the copy and
 * its memory verifies; a death inside the unprotected window either still
 * completes or names its lost pages, which are then the only pages wrong.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Simulation, type SimConfig } from "../src/sim/simulation.js";
import { parseWorkload } from "../src/workload/parse.js";

const SCALE = Number(process.env.PPSIM_PROPERTY_RUNS ?? 1);
const runs = (n: number) => ({ numRuns: Math.round(n * SCALE) });

const configArb: fc.Arbitrary<SimConfig> = fc
  .record({
    pages: fc.integer({ min: 64, max: 600 }),
    vcpus: fc.integer({ min: 1, max: 3 }),
    writeShare: fc.integer({ min: 0, max: 100 }),
    zeroShare: fc.integer({ min: 0, max: 80 }),
    mode: fc.constantFrom("postcopy" as const, "hybrid" as const),
    hybridRounds: fc.integer({ min: 1, max: 2 }),
    latencyUs: fc.integer({ min: 50, max: 2000 }),
    bandwidth: fc.constantFrom(10e6, 125e6),
    storageBw: fc.constantFrom(5e6, 50e6, 500e6),
    storageLatencyUs: fc.integer({ min: 0, max: 3000 }),
    seed: fc.nat(1000),
  })
  .map((c) => ({
    workload: parseWorkload({
      ppsim_workload: 1,
      name: "random",
      memory: c.pages * 4096,
      page_size: 4096,
      vcpus: c.vcpus,
      zero_share: c.zeroShare / 100,
      warmup_ms: 2,
      phases: [{ steps: 20_000, compute_ns: 4_000, write_share: c.writeShare / 100, pattern: { kind: "uniform" } }],
    }),
    options: { mode: c.mode, hybridRounds: c.hybridRounds, reconnectTimeoutMs: 50 },
    link: { bandwidthBytesPerSec: c.bandwidth, latencyUs: c.latencyUs },
    standby: { writeBytesPerSec: c.storageBw, latencyUs: c.storageLatencyUs },
    seed: c.seed,
    maxVirtualMs: 30_000,
  }));

describe("standby copy (simulator)", () => {
  it("a source death after switchover with the copy complete ends with verified memory; inside the window the lost pages are named and are the only ones wrong", () => {
    fc.assert(
      fc.property(configArb, fc.integer({ min: 0, max: 1000 }), (cfg, where) => {
        const alive = new Simulation(cfg).runToEnd();
        const sb = alive.standby;
        expect(alive.outcome).toBe("completed");
        fc.pre(sb !== undefined && sb.opened_at_ms !== null);
        const opened = sb!.opened_at_ms as number;
        // A death anywhere from the destination's resume (the switchover done) to the source's end.
        const resumed = opened + alive.downtime_ms + 0.001;
        fc.pre(resumed < alive.total_ms);
        const diesAt = resumed + ((alive.total_ms - resumed) * where) / 1000;
        const sim = new Simulation({ ...cfg, sourceDiesAtMs: diesAt });
        const r = sim.runToEnd();
        const protectedBy = sb!.closed_by === "copy" && sb!.window_ms !== null ? opened + sb!.window_ms : Infinity;
        if (diesAt >= protectedBy) {
          expect(r.outcome, r.reason).toBe("completed");
          expect(r.verified).toBe(true);
          expect(sim.verify().ok).toBe(true);
          return;
        }
        if (r.outcome === "completed") {
          expect(r.verified).toBe(true);
          return;
        }
        const fill = r.standby?.fill;
        expect(fill, r.reason).toBeTruthy();
        expect(fill!.lost).toBeGreaterThan(0);
        expect(r.reason).toMatch(/the VM is lost: .*inside the unprotected window/);
        // Nothing installed is wrong: the only mismatches are the pages named lost.
        expect(sim.verify().mismatches).toBe(fill!.lost);
      }),
      runs(80),
    );
  });
});
