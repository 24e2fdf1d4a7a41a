/**
 * The ownership rule (SPEC.md: only vCPU v writes pages p ≡ v mod vcpus) for
 * every vCPU count: a power of two takes the mask path in generator.ts, any
 * other count the remainder; both must give a write on an owned page inside
 * the phase's region, and a region too small to hold an owned page gives
 * reads only. Odd page counts put the region's end mid-group, so the step
 * back (`q -= vcpus`) is exercised too.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AccessGenerator, compilePhases, parseWorkload } from "../src/workload/index.js";

describe("the generator's writes follow the ownership rule", () => {
  it("writes land on owned pages in the region, for power-of-two and other vCPU counts", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.integer({ min: 1, max: 16 }), fc.constantFrom("uniform", "hotcold", "sequential"), fc.nat(1000), (pages, vcpus, kind, seed) => {
        const pattern = kind === "hotcold" ? { kind, hot_share: 0.3, hot_access: 0.7 } : kind === "sequential" ? { kind, stride: 3 } : { kind };
        const w = parseWorkload({ ppsim_workload: 1, name: "o", memory: pages * 4096, vcpus, phases: [{ steps: 1000, compute_ns: 10, write_share: 0.6, pattern }] });
        const phases = compilePhases(w);
        let writes = 0;
        // Every draw is checked in plain comparisons and the offenders asserted once: three expect() calls a draw
        // (up to 640 k a run of the property) were nearly all of this file's 16 s.
        const outside: number[] = [];
        const notOwned: string[] = [];
        for (let v = 0; v < vcpus; v++) {
          const g = new AccessGenerator(phases, vcpus, v, seed);
          for (let i = 0; i < 200; i++) {
            const p = g.next();
            if (!(p >= 0 && p < pages)) outside.push(p);
            if (g.isWrite) {
              writes++;
              if (p % vcpus !== v) notOwned.push(`vCPU ${v} wrote page ${p}`);
            }
          }
        }
        expect(outside, `pages outside 0..${pages - 1}`).toEqual([]);
        expect(notOwned).toEqual([]);
        // Some vCPU owns a page whenever there are pages; 0.6 of 200 × vcpus draws want to write.
        expect(writes).toBeGreaterThan(0);
      }),
      { seed: 14, numRuns: 200 },
    );
  });
});
