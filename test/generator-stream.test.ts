/**
 * The access generator's random stream against the workload it draws for:
 * whatever the parameters, the share of accesses that go to the hot set, the
 * share that write, and how pages spread over the hot set, the cold rest or
 * a uniform region are what the workload says (SPEC.md), within the
 * sampling error of the draws made. The decision draw makes the hot/cold and
 * the write decision together (generator.ts), so the write share is checked
 * on each side of it too. Fixed fast-check seed: a statistical check that
 * passes for one set of parameters passes on every run.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AccessGenerator, compilePhases, parseWorkload, type Workload } from "../src/workload/index.js";

const DRAWS = 40_000;
/** Bound on a chi-square over 16 buckets (15 degrees of freedom): exceeded with probability below 1e-7. */
const CHI2_15 = 62;

function workloadOf(pages: number, vcpus: number, writeShare: number, pattern: Record<string, unknown>): Workload {
  return parseWorkload({ ppsim_workload: 1, name: "s", memory: pages * 4096, vcpus, phases: [{ steps: 1_000_000, compute_ns: 10, write_share: writeShare, pattern }] });
}

function sample(w: Workload, vcpu: number, seed: number): { pages: Uint32Array; writes: Uint8Array } {
  const g = new AccessGenerator(compilePhases(w), w.vcpus, vcpu, seed);
  const pages = new Uint32Array(DRAWS);
  const writes = new Uint8Array(DRAWS);
  for (let i = 0; i < DRAWS; i++) {
    pages[i] = g.next();
    writes[i] = g.isWrite ? 1 : 0;
  }
  return { pages, writes };
}

/** |observed − p| within five standard errors of a share over n draws (plus `slack`). */
function expectShare(hits: number, n: number, p: number, what: string, slack = 0): void {
  const bound = 5 * Math.sqrt((p * (1 - p)) / n) + 1 / n + slack;
  expect(Math.abs(hits / n - p), `${what}: ${hits}/${n} against ${p}`).toBeLessThanOrEqual(bound);
}

/** Chi-square of `pages` (all in [lo, hi)) over 16 equal buckets against a uniform spread. */
function chi2Uniform(pages: number[], lo: number, hi: number): number {
  const k = 16;
  const counts = new Array<number>(k).fill(0);
  const width = new Array<number>(k).fill(0);
  const bucket = (p: number) => Math.floor(((p - lo) * k) / (hi - lo));
  for (let p = lo; p < hi; p++) width[bucket(p)]++;
  for (const p of pages) counts[bucket(p)]++;
  let chi2 = 0;
  for (let b = 0; b < k; b++) {
    const expected = (pages.length * width[b]) / (hi - lo);
    chi2 += (counts[b] - expected) ** 2 / expected;
  }
  return chi2;
}

const params = {
  pages: fc.integer({ min: 16_384, max: 1 << 18 }),
  vcpus: fc.integer({ min: 1, max: 8 }),
  writeShare: fc.oneof(fc.constant(0), fc.double({ min: 0.02, max: 0.9, noNaN: true })),
  seed: fc.nat(1_000_000),
};

describe("the access generator's stream keeps the workload's distributions", () => {
  it("hotcold: hot share, write share on each side, and the spread within the hot set and the cold rest", () => {
    fc.assert(
      fc.property(
        params.pages,
        params.vcpus,
        params.writeShare,
        fc.double({ min: 0.01, max: 0.5, noNaN: true }),
        fc.double({ min: 0.05, max: 0.95, noNaN: true }),
        params.seed,
        (pages, vcpus, writeShare, hotShare, hotAccess, seed) => {
          const w = workloadOf(pages, vcpus, writeShare, { kind: "hotcold", hot_share: hotShare, hot_access: hotAccess });
          const hotLen = Math.min(pages, Math.max(1, Math.floor(hotShare * pages)));
          const { pages: ps, writes } = sample(w, seed % vcpus, seed);
          const hotReads: number[] = [];
          const coldReads: number[] = [];
          let nWrites = 0;
          let hotWrites = 0;
          for (let i = 0; i < DRAWS; i++) {
            if (writes[i] === 1) {
              nWrites++;
              if (ps[i] < hotLen) hotWrites++;
            } else if (ps[i] < hotLen) hotReads.push(ps[i]);
            else coldReads.push(ps[i]);
          }
          const reads = hotReads.length + coldReads.length;
          expectShare(nWrites, DRAWS, writeShare, "write share");
          // A read is where the hot/cold decision put it; a write moves within its group of `vcpus` pages (the ownership rule).
          expectShare(hotReads.length, reads, hotAccess, "hot share of reads");
          // The same decision draw also made the write decision: writes go hot as often as reads do.
          if (nWrites >= 200) expectShare(hotWrites, nWrites, hotAccess, "hot share of writes", vcpus / hotLen);
          if (hotReads.length >= 1600) expect(chi2Uniform(hotReads, 0, hotLen), "spread over the hot set").toBeLessThan(CHI2_15);
          if (coldReads.length >= 1600) expect(chi2Uniform(coldReads, hotLen, pages), "spread over the cold rest").toBeLessThan(CHI2_15);
        },
      ),
      { numRuns: 25, seed: 14 },
    );
  });

  it("uniform: write share and spread over the region", () => {
    fc.assert(
      fc.property(params.pages, params.vcpus, params.writeShare, params.seed, (pages, vcpus, writeShare, seed) => {
        const w = workloadOf(pages, vcpus, writeShare, { kind: "uniform" });
        const { pages: ps, writes } = sample(w, seed % vcpus, seed);
        const reads: number[] = [];
        for (let i = 0; i < DRAWS; i++) if (writes[i] === 0) reads.push(ps[i]);
        expectShare(DRAWS - reads.length, DRAWS, writeShare, "write share");
        expect(chi2Uniform(reads, 0, pages), "spread of reads").toBeLessThan(CHI2_15);
      }),
      { numRuns: 25, seed: 14 },
    );
  });

  it("sequential and zipf: the write share", () => {
    fc.assert(
      fc.property(params.vcpus, params.writeShare, fc.constantFrom("sequential", "zipf"), params.seed, (vcpus, writeShare, kind, seed) => {
        const w = workloadOf(16_384, vcpus, writeShare, { kind });
        const { writes } = sample(w, seed % vcpus, seed);
        expectShare(writes.reduce((a, b) => a + b, 0), DRAWS, writeShare, `${kind} write share`);
      }),
      { numRuns: 20, seed: 14 },
    );
  });
});
