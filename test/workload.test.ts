import fc from "fast-check";
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  AccessGenerator,
  compilePhases,
  GENERATOR_STATE_BYTES,
  isInitiallyZero,
  loadWorkload,
  parseByteSize,
  parseWorkload,
  regionPages,
  toGuestConfig,
  WorkloadError,
  ZipfSampler,
  type Workload,
} from "../src/workload/index.js";

const EXAMPLES = readdirSync("examples").filter((f) => f.endsWith(".json"));

/** A valid workload as JSON, to break one field at a time. */
function base(): Record<string, unknown> {
  return {
    ppsim_workload: 1,
    name: "t",
    memory: "1MiB",
    vcpus: 2,
    phases: [
      { steps: 10, compute_ns: 100, write_share: 0.5, pattern: { kind: "uniform" } },
      { steps: 10, compute_ns: 100, write_share: 0.5, pattern: { kind: "hotcold", hot_share: 0.2 } },
    ],
  };
}

const DELETE = Symbol("delete");

/** The base workload with the field at `path` (like "phases[1].pattern.kind") set to `value`, or deleted. */
function withField(path: string, value: unknown): Record<string, unknown> {
  const w = base();
  const keys = path.replace(/\[(\d+)\]/g, ".$1").split(".");
  let obj = w as Record<string, unknown>;
  for (const k of keys.slice(0, -1)) obj = obj[k] as Record<string, unknown>;
  const last = keys[keys.length - 1];
  if (value === DELETE) delete obj[last];
  else obj[last] = value;
  return w;
}

describe("workload files", () => {
  it.each(EXAMPLES)("example %s parses with 1 GiB of 4 KiB pages", (file) => {
    const w = loadWorkload(`examples/${file}`);
    expect(w.memBytes).toBe(1024 ** 3);
    expect(w.pageSize).toBe(4096);
    expect(w.pageCount).toBe(262144);
    expect(w.warmupMs).toBeGreaterThan(0);
  });

  it("fills defaults", () => {
    const w = parseWorkload(base());
    expect(w).toMatchObject({ pageSize: 4096, zeroShare: 0, warmupMs: 0, description: "", pageCount: 256 });
    expect(w.phases[0].pattern).toEqual({ kind: "uniform", region: { offset: 0, size: 1 }, stride: 1, hotShare: 0.1, hotAccess: 0.9, exponent: 1.1 });
    expect(w.phases[1].pattern.hotShare).toBe(0.2);
  });

  it.each([
    ["256MiB", 256 * 1024 ** 2],
    ["1GiB", 1024 ** 3],
    ["1.5GB", 1.5e9],
    ["4096", 4096],
    [8192, 8192],
    ["2 KiB", 2048],
    ["1tib", 1024 ** 4],
  ])("size %j is %d bytes", (text, bytes) => {
    expect(parseByteSize(text)).toBe(bytes);
  });

  it.each([["12XB"], ["-1MiB"], ["0"], ["1.5B"], [""], [true]])("size %j is refused with a reason", (text) => {
    expect(typeof parseByteSize(text)).toBe("string");
  });

  const cases: [string, unknown, RegExp][] = [
    ["ppsim_workload", DELETE, /^ppsim_workload is required/],
    ["ppsim_workload", 3, /^ppsim_workload must be 1 or 2 .*got number 3/],
    ["phases[0].kind", "trace", /^phases\[0\]\.kind needs "ppsim_workload": 2/],
    ["name", " ", /^name must not be empty/],
    ["memory", "12XB", /^memory has an unknown unit "XB"/],
    ["memory", 5000, /^memory must be a multiple of page_size \(4096\), got 5000 bytes/],
    ["page_size", 3000, /^page_size must be a power of two, got 3000/],
    ["vcpus", 65, /^vcpus must be an integer in \[1, 64\], got 65/],
    ["vcpus", 1.5, /^vcpus must be an integer/],
    ["zero_share", 2, /^zero_share must be in \[0, 1\], got 2/],
    ["warmup_ms", -1, /^warmup_ms must be in \[0, 3600000\] \(an hour\), got -1/],
    ["warmup_ms", 4e6, /^warmup_ms must be in \[0, 3600000\] \(an hour\), got 4000000/],
    ["memory", "2TiB", /^memory must be at most 1TiB \(1099511627776 bytes\), got 2TiB/],
    ["phases", [], /^phases must be a non-empty array of phases, got an empty array/],
    ["phases[1]", 3, /^phases\[1\] must be an object, got number 3/],
    ["phases[0].steps", 0, /^phases\[0\]\.steps must be an integer ≥ 1, got 0/],
    ["phases[1].compute_ns", -5, /^phases\[1\]\.compute_ns must be ≥ 0, got -5/],
    ["phases[0].write_share", "0.5", /^phases\[0\]\.write_share must be a number, got string "0.5"/],
    ["phases[0].pattern", DELETE, /^phases\[0\]\.pattern is required/],
    ["phases[0].pattern.kind", "random", /^phases\[0\]\.pattern\.kind must be one of sequential, uniform, hotcold, zipf, got "random"/],
    ["phases[1].pattern.hot_share", 3, /^phases\[1\]\.pattern\.hot_share must be in \[0, 1\], got 3$/],
    ["phases[0].pattern.stride", 2, /^phases\[0\]\.pattern\.stride only applies to the sequential pattern, not uniform/],
    ["phases[0].pattern", { kind: "zipf", exponent: 0 }, /^phases\[0\]\.pattern\.exponent must be > 0, got 0/],
    ["phases[0].pattern", { kind: "sequential", stride: 0 }, /^phases\[0\]\.pattern\.stride must be an integer ≥ 1, got 0/],
    ["phases[0].pattern.region", { offset: 1 }, /^phases\[0\]\.pattern\.region\.offset must be in \[0, 1\), got 1/],
    ["phases[0].pattern.region", { offset: 0, size: 0 }, /^phases\[0\]\.pattern\.region\.size must be in \(0, 1\], got 0/],
    ["phases[0].pattern.region", { offset: 0.5, size: 0.6 }, /^phases\[0\]\.pattern\.region\.size must satisfy offset \+ size ≤ 1/],
    ["phases[1].pattern.hot_shar", 0.1, /^phases\[1\]\.pattern\.hot_shar is not a known field/],
  ];
  it.each(cases)("names the field: %s = %j", (path, value, message) => {
    const parse = () => parseWorkload(withField(path, value));
    expect(parse).toThrow(WorkloadError);
    expect(parse).toThrow(message);
  });

  it("prefixes messages with the origin", () => {
    expect(() => parseWorkload({ ...base(), vcpus: 0 }, "w.json")).toThrow(/^w\.json: vcpus must be/);
    expect(() => parseWorkload([], "w.json")).toThrow("w.json: the workload must be an object, got an array");
    expect(() => loadWorkload("examples/none.json")).toThrow(/examples\/none\.json: cannot read/);
  });
});

describe("initial content", () => {
  it("zero share 0 and 1 are exact; others are close on many pages", () => {
    const n = 100_000;
    const count = (share: number) => Array.from({ length: n }, (_, p) => isInitiallyZero(p, share)).filter(Boolean).length;
    expect(count(0)).toBe(0);
    expect(count(1)).toBe(n);
    expect(Math.abs(count(0.3) / n - 0.3)).toBeLessThan(0.01);
  });

  it("uses the golden-ratio hash of SPEC.md", () => {
    // 1 * 0x9E3779B1 / 2^32 ≈ 0.618
    expect(isInitiallyZero(1, 0.62)).toBe(true);
    expect(isInitiallyZero(1, 0.61)).toBe(false);
    expect(isInitiallyZero(0, 0.0001)).toBe(true);
  });
});

function workloadOf(pages: number, vcpus: number, pattern: Record<string, unknown>, writeShare = 0.5, steps = 1000): Workload {
  return parseWorkload({
    ppsim_workload: 1,
    name: "g",
    memory: pages * 4096,
    vcpus,
    phases: [{ steps, compute_ns: 10, write_share: writeShare, pattern }],
  });
}

function draw(w: Workload, seed: number, vcpu: number, n: number): { pages: number[]; writes: boolean[] } {
  const g = new AccessGenerator(compilePhases(w), w.vcpus, vcpu, seed);
  const pages: number[] = [];
  const writes: boolean[] = [];
  for (let i = 0; i < n; i++) {
    pages.push(g.next());
    writes.push(g.isWrite);
  }
  return { pages, writes };
}

const patternArb = fc.oneof(
  fc.record({ kind: fc.constant("sequential"), stride: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant("uniform") }),
  fc.record({ kind: fc.constant("hotcold"), hot_share: fc.double({ min: 0, max: 1, noNaN: true }), hot_access: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant("zipf"), exponent: fc.double({ min: 0.1, max: 3, noNaN: true }) }),
);
const regionArb = fc
  .tuple(fc.double({ min: 0, max: 0.95, noNaN: true }), fc.double({ min: 0.001, max: 1, noNaN: true }))
  .map(([offset, share]) => ({ offset, size: Math.max(1e-6, (1 - offset) * share) }));

describe("access generator", () => {
  it("a vCPU only writes pages it owns, and every access stays in the region", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2000 }),
        fc.integer({ min: 1, max: 9 }),
        patternArb,
        regionArb,
        fc.nat(1000),
        (pages, vcpus, pattern, region, seed) => {
          const w = workloadOf(pages, vcpus, { ...pattern, region }, 0.6);
          const { start, end } = regionPages(w.phases[0].pattern.region, pages);
          for (let v = 0; v < vcpus; v++) {
            const { pages: ps, writes } = draw(w, seed, v, 300);
            const bad = ps.findIndex((p, i) => p < start || p >= end || (writes[i] && p % vcpus !== v));
            expect(bad, `vCPU ${v}: access ${bad} to page ${ps[bad]} (write: ${writes[bad]}) in [${start}, ${end})`).toBe(-1);
          }
        },
      ),
      { numRuns: 150 },
    );
  });

  it("is deterministic per (seed, vCPU) and differs across them", () => {
    const w = workloadOf(4096, 4, { kind: "zipf", exponent: 1.2 });
    expect(draw(w, 7, 1, 500)).toEqual(draw(w, 7, 1, 500));
    expect(draw(w, 7, 1, 500).pages).not.toEqual(draw(w, 8, 1, 500).pages);
    expect(draw(w, 7, 1, 500).pages).not.toEqual(draw(w, 7, 2, 500).pages);
  });

  it("continues exactly after save and restore", () => {
    const w = parseWorkload({
      ...base(),
      phases: [
        { steps: 7, compute_ns: 1, write_share: 0.5, pattern: { kind: "sequential", stride: 3 } },
        { steps: 5, compute_ns: 2, write_share: 0.5, pattern: { kind: "zipf" } },
      ],
    });
    const phases = compilePhases(w);
    const a = new AccessGenerator(phases, 2, 1, 42);
    for (let i = 0; i < 30; i++) a.next();
    const view = new DataView(new ArrayBuffer(GENERATOR_STATE_BYTES + 8));
    a.save(view, 8);
    const b = AccessGenerator.restore(phases, 2, 1, 42, view, 8);
    for (let i = 0; i < 50; i++) {
      expect([b.next(), b.isWrite, b.computeNs, b.steps]).toEqual([a.next(), a.isWrite, a.computeNs, a.steps]);
    }
  });

  it("sequential: each vCPU starts at its share and wraps by stride, restarting with each phase", () => {
    const w = workloadOf(100, 4, { kind: "sequential", stride: 30, region: { offset: 0.1, size: 0.5 } }, 0, 3);
    // region is pages [10, 60): vCPU 2 starts at 10 + floor(2*50/4) = 35
    expect(draw(w, 1, 2, 7).pages).toEqual([35, 15, 45, 35, 15, 45, 35]);
  });

  it("phases run in order and repeat", () => {
    const w = parseWorkload({
      ...base(),
      vcpus: 1,
      phases: [
        { steps: 2, compute_ns: 100, write_share: 0, pattern: { kind: "sequential", region: { offset: 0, size: 0.5 } } },
        { steps: 1, compute_ns: 200, write_share: 0, pattern: { kind: "sequential", region: { offset: 0.5, size: 0.5 } } },
      ],
    });
    const g = new AccessGenerator(compilePhases(w), 1, 0, 1);
    const seen: [number, number][] = [];
    for (let i = 0; i < 6; i++) seen.push([g.computeNs, g.next()]);
    expect(seen).toEqual([[100, 0], [100, 1], [200, 128], [100, 0], [100, 1], [200, 128]]);
  });

  it("a write in a region narrower than the vCPU count may become a read", () => {
    const w = workloadOf(64, 8, { kind: "uniform", region: { offset: 0.5, size: 1 / 64 } }, 1);
    const { pages, writes } = draw(w, 3, 5, 50);
    pages.forEach((p, i) => {
      expect(p).toBe(32);
      expect(writes[i]).toBe(false);
    });
    expect(draw(w, 3, 0, 5).writes).toEqual([true, true, true, true, true]);
  });

  it("hotcold sends hot_access of the accesses to the hot set", () => {
    const w = workloadOf(10_000, 1, { kind: "hotcold", hot_share: 0.05, hot_access: 0.8 }, 0);
    const { pages } = draw(w, 5, 0, 50_000);
    const hot = pages.filter((p) => p < 500).length / pages.length;
    expect(hot).toBeGreaterThan(0.79);
    expect(hot).toBeLessThan(0.81);
  });

  it("zipf ranks follow r^-s", () => {
    const n = 1000;
    const s = 1.1;
    const z = new ZipfSampler(n, s);
    let x = 0.5;
    // A fixed low-discrepancy stream keeps the check deterministic and tight.
    const next = () => (x = (x + 0.6180339887498949) % 1);
    const counts = new Array<number>(n + 1).fill(0);
    const draws = 200_000;
    for (let i = 0; i < draws; i++) counts[z.sample(next)]++;
    let h = 0;
    for (let r = 1; r <= n; r++) h += r ** -s;
    for (const r of [1, 2, 10]) expect(counts[r] / draws).toBeCloseTo(r ** -s / h, 2);
    expect(counts[0]).toBe(0);
  });
});

describe("guest config", () => {
  it("renders every key, defaults filled", () => {
    const w = parseWorkload({
      ...base(),
      zero_share: 0.25,
      phases: [
        { steps: 10, compute_ns: 100, write_share: 0.5, pattern: { kind: "zipf", exponent: 1.3, region: { offset: 0.5, size: 0.25 } } },
        { name: "scan", steps: 3, compute_ns: 0, write_share: 1, pattern: { kind: "sequential", stride: 2 } },
      ],
    });
    expect(toGuestConfig(w, 9)).toBe(
      [
        "mem_bytes 1048576",
        "page_size 4096",
        "vcpus 2",
        "seed 9",
        "zero_share 0.25",
        "phase steps=10 compute_ns=100 write_share=0.5 pattern=zipf region_offset=0.5 region_size=0.25 stride=1 hot_share=0.1 hot_access=0.9 exponent=1.3",
        "phase steps=3 compute_ns=0 write_share=1 pattern=sequential region_offset=0 region_size=1 stride=2 hot_share=0.1 hot_access=0.9 exponent=1.1",
        "",
      ].join("\n"),
    );
  });
});
