/** Migration policies, end to end in the simulator: bandwidth cap, auto-converge, the round cap, hybrid's switch. */
import { describe, expect, it } from "vitest";
import type { MigrationOptions } from "../src/engine/options.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload, withMemory } from "../src/workload/index.js";

const GIGABIT = { bandwidthBytesPerSec: 125e6, latencyUs: 100 };
const db = withMemory(loadWorkload("examples/database.json"), 64 * 1024 * 1024);
const idle = withMemory(loadWorkload("examples/idle.json"), 64 * 1024 * 1024);
const run = (workload: typeof db, options: Partial<MigrationOptions>) => simulate({ workload, options, link: { ...GIGABIT }, seed: 3 });

describe("migration policies", () => {
  it("a bandwidth cap holds pre-copy traffic to the cap", () => {
    const capped = run(idle, { mode: "precopy", bandwidthCap: 20e6 });
    const free = run(idle, { mode: "precopy" });
    const rate = (r: typeof capped) => r.rounds[0].bytes / (r.rounds[0].ms / 1000);
    expect(capped.verified).toBe(true);
    expect(rate(capped)).toBeLessThanOrEqual(20e6 * 1.02);
    expect(rate(capped)).toBeGreaterThan(20e6 * 0.9);
    expect(rate(free)).toBeGreaterThan(100e6);
  });

  it("auto-converge throttles a guest that dirties faster than the link, until pre-copy converges", () => {
    const r = run(db, { mode: "precopy" });
    expect(r.switchover_reason).toBe("converged-throttled");
    expect(r.throttle).toBeGreaterThan(0);
    expect(r.verified).toBe(true);
  });

  it("without auto-converge, pre-copy stops and copies at the round cap, with a long downtime", () => {
    const r = run(db, { mode: "precopy", autoConverge: false, maxRounds: 4 });
    expect(r.switchover_reason).toBe("round-cap");
    expect(r.rounds).toHaveLength(4);
    expect(r.throttle).toBe(0);
    expect(r.downtime_ms).toBeGreaterThan(r.rounds[3].ms / 2);
    expect(r.verified).toBe(true);
  });

  it("hybrid goes post-copy once a round hardly shrinks the dirty set, or after its rounds", () => {
    const stalled = run(db, { mode: "hybrid", hybridRounds: 5 });
    expect(stalled.switchover_reason).toBe("hybrid-stalled");
    expect(stalled.demand_faults).toBeGreaterThan(0);
    const web = withMemory(loadWorkload("examples/web-server.json"), 64 * 1024 * 1024);
    const counted = run(web, { mode: "hybrid", hybridRounds: 1, downtimeLimitMs: 0.01 });
    expect(counted.switchover_reason).toBe("hybrid-rounds");
    expect(counted.rounds).toHaveLength(1);
    for (const r of [stalled, counted]) expect(r.verified).toBe(true);
  });
});
