import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Guest, GuestShared } from "../src/sim/guest.js";
import { simulate, type SimConfig } from "../src/sim/simulation.js";
import { compilePhases, loadWorkload, parseWorkload, withMemory, type Workload } from "../src/workload/index.js";

// SimConfig.trackContent false must change nothing simulated: only the end check goes (verified null) and the report says so.
function withoutCheck(r: Record<string, unknown>): Record<string, unknown> {
  const { verified: _v, sim, ...rest } = r;
  const { content_tracked: _c, ...simRest } = sim as Record<string, unknown>;
  return { ...rest, sim: simRest };
}

function both(cfg: SimConfig) {
  const on = simulate(cfg) as unknown as Record<string, unknown>;
  const off = simulate({ ...cfg, trackContent: false }) as unknown as Record<string, unknown>;
  return { on, off };
}

const example = (name: string, mib: number): Workload => withMemory(loadWorkload(new URL(`../examples/${name}.json`, import.meta.url).pathname), mib * 1024 * 1024);

describe("simulating without page contents", () => {
  for (const name of ["web-server", "database", "memory-scan", "idle"]) {
    for (const mode of ["precopy", "postcopy", "hybrid"] as const) {
      it(`gives the same run: ${name}, ${mode}`, () => {
        const { on, off } = both({ workload: example(name, 64), options: { mode }, link: { bandwidthBytesPerSec: 1.25e8, latencyUs: 200 }, seed: 3 });
        expect(on.verified).toBe(on.outcome === "completed" ? true : null);
        expect(off.verified).toBeNull();
        expect((off.sim as Record<string, unknown>).content_tracked).toBe(false);
        expect((on.sim as Record<string, unknown>).content_tracked).toBeUndefined();
        expect(withoutCheck(off)).toEqual(withoutCheck(on));
      });
    }
  }

  it("gives the same run through outages, a bandwidth cap and a deadline", () => {
    const w = example("database", 32);
    const { on, off } = both({ workload: w, options: { mode: "hybrid", bandwidthCap: 5e7 }, link: { bandwidthBytesPerSec: 1.25e8, latencyUs: 500 }, seed: 9, outages: [{ atMs: 100, durationMs: 50 }] });
    expect(withoutCheck(off)).toEqual(withoutCheck(on));
    const short = both({ workload: w, options: { mode: "precopy" }, link: { bandwidthBytesPerSec: 1e6, latencyUs: 100 }, seed: 2, maxVirtualMs: 200 });
    expect(short.on.outcome).toBe("failed");
    expect(withoutCheck(short.off)).toEqual(withoutCheck(short.on));
  });

  it("keeps checking where contents are needed (a standby copy)", () => {
    const r = simulate({ workload: example("web-server", 16), options: { mode: "postcopy" }, link: { bandwidthBytesPerSec: 1.25e8, latencyUs: 100 }, seed: 1, trackContent: false, standby: { writeBytesPerSec: 1e9, latencyUs: 500 } });
    expect(r.verified).toBe(true);
    expect(r.sim?.content_tracked).toBeUndefined();
  });

  it("reads a source page as zero exactly when its version would be (fast-check)", () => {
    const w = parseWorkload({
      ppsim_workload: 1,
      name: "z",
      memory: 512 * 4096,
      vcpus: 2,
      zero_share: 0.6,
      phases: [{ steps: 400, compute_ns: 500, write_share: 0.4, pattern: { kind: "uniform" } }],
    });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1000 }), fc.integer({ min: 1, max: 2000 }), (seed, untilUs) => {
        const guests = [true, false].map((content) => {
          const g = new Guest("source", new GuestShared(w, compilePhases(w), seed, content), () => undefined);
          g.boot(0);
          g.runUntil(untilUs);
          return g;
        });
        for (let p = 0; p < w.pageCount; p++) expect(guests[1].readPage(p) === null).toBe(guests[0].readPage(p) === null);
        expect(guests[1].memory.length).toBe(0);
      }),
      { seed: 14, numRuns: 60 },
    );
  });
});
