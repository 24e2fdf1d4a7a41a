/**
 * The stream's cost per install call (src/sim/host-runs.ts): a pages
 * message split into runs as the native receiver splits it, each run
 * charged its call beside its pages; the calibration's fit; a profile
 * without the keys charges per page as before.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fitRuns } from "../src/real/calibrate-runs.js";
import { framePages, runPage } from "../src/real/calibrate-bulk.js";
import { checkHostProfile, DEFAULT_HOST, messageCostUs, type HostProfile } from "../src/sim/host.js";
import { streamCpuUs } from "../src/sim/host-cpu.js";
import { CALIBRATED_RUN_PAGES as R, installRuns, RUN_KEYS, runsWallNs } from "../src/sim/host-runs.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";

const D = new Uint8Array(4096);
/** A pages message of these page numbers; `zero`: which entries are zero pages. */
const msg = (pages: number[], zero: (i: number) => boolean) => ({ type: "pages" as const, pages: Uint32Array.from(pages), data: pages.map((_, i) => (zero(i) ? null : D)) });
/** Without the run keys, and without the engines' part (so a message's stream time is its runs' alone). */
const NO_RUNS = Object.fromEntries(Object.entries(DEFAULT_HOST).filter(([k]) => !(RUN_KEYS as readonly string[]).includes(k))) as unknown as HostProfile;
const WALL = { ...NO_RUNS, cores_available: 1, engine_ns_per_page: 0, stream_ns_per_page: 5000, stream_ns_per_zero_page: 2000, stream_ns_per_page_running: 8000, stream_ns_per_zero_page_running: 4000 };
const RUNS = { ...WALL, stream_ns_per_run: 1600, stream_ns_per_zero_run: 800, stream_ns_per_run_running: 3200, stream_ns_per_zero_run_running: 1600 };

describe("install runs (host-runs.ts)", () => {
  it("splits a message where page numbers stop following each other; a run with any data page is a data run", () => {
    expect(installRuns([], [])).toEqual({ dataRuns: 0, dataRunPages: 0, zeroRuns: 0, zeroRunPages: 0, holePages: 0 });
    const m = msg([0, 1, 2, 3], () => false);
    expect(installRuns(m.pages, m.data)).toEqual({ dataRuns: 1, dataRunPages: 4, zeroRuns: 0, zeroRunPages: 0, holePages: 0 });
    // 0 1 | 5 | 7 8 | 3 | 4 (4 after 3 follows it: one run "3 4"), zero pages at 1, 5, 7, 8.
    const z = new Set([1, 2, 3, 4]);
    const s = msg([0, 1, 5, 7, 8, 3, 4], (i) => z.has(i));
    expect(installRuns(s.pages, s.data)).toEqual({ dataRuns: 2, dataRunPages: 4, zeroRuns: 2, zeroRunPages: 3, holePages: 0 });
    // Repeated and descending page numbers each start a run.
    const r = msg([4, 4, 3], () => true);
    expect(installRuns(r.pages, r.data)).toEqual({ dataRuns: 0, dataRunPages: 0, zeroRuns: 3, zeroRunPages: 3, holePages: 0 });
  });

  it("with zero holes, a run splits at its zero pages: one call per stretch of data pages, none for a hole", () => {
    // 0 1 2 3 4 5 | 9: zero pages at 1, 2 and 5; page 9 data.
    const z = new Set([1, 2, 5]);
    const m = msg([0, 1, 2, 3, 4, 5, 9], (i) => z.has(i));
    expect(installRuns(m.pages, m.data, true)).toEqual({ dataRuns: 3, dataRunPages: 4, zeroRuns: 0, zeroRunPages: 0, holePages: 3 });
    expect(installRuns(m.pages, m.data, false)).toEqual({ dataRuns: 2, dataRunPages: 7, zeroRuns: 0, zeroRunPages: 0, holePages: 0 });
    // Through the message: 16 consecutive pages, every other one zero: 8 calls of one data page, 8 holes at the zero page's rate.
    const alt = msg(Array.from({ length: 16 }, (_, i) => i), (i) => i % 2 === 1);
    expect(messageCostUs(RUNS, alt, true, false, 0, true).sendUs).toBeCloseTo((8 * 3200 + 8 * (8000 - 3200 / R) + 8 * 4000) / 1000, 6);
    // All zero: holes only, no call (without holes: one UFFDIO_ZEROPAGE of 16 pages).
    const zeros = msg(Array.from({ length: 16 }, (_, i) => i), () => true);
    expect(messageCostUs(RUNS, zeros, true, false, 0, true).sendUs).toBeCloseTo((16 * 4000) / 1000, 6);
    expect(messageCostUs(RUNS, zeros, true).sendUs).toBeCloseTo((1600 + 16 * (4000 - 1600 / R)) / 1000, 6);
  });

  it("with or without holes, every entry is counted once, and holes only as zero pages", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.boolean()), { maxLength: 40 }), (es) => {
        const data = es.map((e) => (e[1] ? null : D));
        const h = installRuns(es.map((e) => e[0]), data, true);
        const n = installRuns(es.map((e) => e[0]), data, false);
        expect(h.dataRunPages + h.holePages).toBe(es.length);
        expect(h.holePages).toBe(es.filter((e) => e[1]).length);
        expect(h.zeroRuns + h.zeroRunPages + n.holePages).toBe(0);
        // Splitting at zero pages never merges runs: at least as many data calls as without holes.
        expect(h.dataRuns).toBeGreaterThanOrEqual(n.dataRuns);
      }),
    );
  });

  it("counts every entry once, in no more runs than entries, and one run for consecutive pages", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.boolean()), { maxLength: 40 }), (es) => {
        const r = installRuns(es.map((e) => e[0]), es.map((e) => (e[1] ? null : D)));
        expect(r.dataRunPages + r.zeroRunPages).toBe(es.length);
        expect(r.dataRuns + r.zeroRuns).toBeLessThanOrEqual(es.length);
        expect(r.dataRuns + r.zeroRuns > 0).toBe(es.length > 0);
        const sorted = es.map((_, i) => 100 + i);
        const one = installRuns(sorted, es.map((e) => (e[1] ? null : D)));
        expect(one.dataRuns + one.zeroRuns).toBe(es.length > 0 ? 1 : 0);
      }),
    );
  });

  it("a calibrated run costs what the per-page figures said; shorter runs pay their calls; without holes a zero page among data is data", () => {
    const all = { dataRuns: 1, dataRunPages: R, zeroRuns: 0, zeroRunPages: 0, holePages: 0 };
    expect(runsWallNs(RUNS, all, false, 5000, 2000)).toBeCloseTo(R * 5000, 6);
    expect(runsWallNs(RUNS, { dataRuns: 0, dataRunPages: 0, zeroRuns: 1, zeroRunPages: R, holePages: 0 }, true, 8000, 4000)).toBeCloseTo(R * 4000, 6);
    // 16 single pages: 16 calls of 3200 + 16 × (8000 − 3200 / R).
    expect(runsWallNs(RUNS, { dataRuns: 16, dataRunPages: 16, zeroRuns: 0, zeroRunPages: 0, holePages: 0 }, true, 8000, 4000)).toBeCloseTo(16 * 3200 + 16 * (8000 - 3200 / R), 6);
    expect(runsWallNs(WALL, all, true, 8000, 4000)).toBeNull();
    // Through the message: 16 pages, every other one a zero page, all consecutive: one UFFDIO_COPY of 16 pages (zeros as data).
    const alt = msg(Array.from({ length: 16 }, (_, i) => i), (i) => i % 2 === 1);
    const oneRun = (3200 + 16 * (8000 - 3200 / R)) / 1000;
    expect(streamCpuUs(RUNS, 16, 8, true, installRuns(alt.pages, alt.data))).toBeCloseTo(oneRun, 6);
    expect(messageCostUs(RUNS, alt, true).sendUs).toBeCloseTo(oneRun, 6);
    // The same without the run keys: 8 × 8 + 8 × 4 µs (the zero pages at the zero rate wherever they are).
    expect(messageCostUs(WALL, alt, true).sendUs).toBeCloseTo(96, 6);
    // Scattered zero pages: 16 zero pages at every other page number, 16 ZEROPAGE calls: 16 × (1600 + 4000 − 1600 / R) ns.
    const scattered = msg(Array.from({ length: 16 }, (_, i) => 2 * i), () => true);
    expect(messageCostUs(RUNS, scattered, true).sendUs).toBeCloseTo((16 * (1600 + 4000 - 1600 / R)) / 1000, 6);
    expect(messageCostUs(RUNS, scattered, false).sendUs).toBeCloseTo((16 * (800 + 2000 - 800 / R)) / 1000, 6);
  });

  it("a noisy fit's call dearer than a calibrated run of its pages adds nothing per page, never less", () => {
    const call = 2 * 8000 * R;
    expect(runsWallNs({ ...RUNS, stream_ns_per_run_running: call }, { dataRuns: 1, dataRunPages: R, zeroRuns: 0, zeroRunPages: 0, holePages: 0 }, true, 8000, 4000)).toBe(call);
  });

  it("the profile takes the keys in pairs, and a profile without them as before", () => {
    expect(checkHostProfile(JSON.parse(JSON.stringify(RUNS)), "p").stream_ns_per_run_running).toBe(3200);
    expect(checkHostProfile(JSON.parse(JSON.stringify(NO_RUNS)), "old").stream_ns_per_run).toBeUndefined();
    const { stream_ns_per_zero_run: _z, ...half } = RUNS;
    expect(() => checkHostProfile(half, "p")).toThrow(/"stream_ns_per_run" and "stream_ns_per_zero_run" go together/);
    expect(() => checkHostProfile({ ...RUNS, stream_ns_per_run_running: -1 }, "p")).toThrow(/"stream_ns_per_run_running" must be a number/);
    expect(() => checkHostProfile({ ...RUNS, stream_ns_per_zero_run: "1" }, "p")).toThrow(/"stream_ns_per_zero_run" must be a number/);
  });

  it("a post-copy with the run keys at 0 is the one without them, with costly calls it is longer", () => {
    const web = withMemory(loadWorkload("examples/web-server.json"), 32 * 1024 * 1024);
    const link = { bandwidthBytesPerSec: 10e9, latencyUs: 20 };
    const zeroCalls = { ...WALL, stream_ns_per_run: 0, stream_ns_per_zero_run: 0, stream_ns_per_run_running: 0, stream_ns_per_zero_run_running: 0 };
    // 16-page messages, calibrate's runs: a message's run then costs what the per-page keys say
    // plus nothing (longer runs amortise the call, which makes the keys-at-0 run the slower one).
    const options = { mode: "postcopy", batchPages: 16 } as const;
    const base = simulate({ workload: web, options, link, host: WALL });
    const dear = simulate({ workload: web, options, link, host: { ...WALL, stream_ns_per_run: 20_000, stream_ns_per_zero_run: 20_000, stream_ns_per_run_running: 20_000, stream_ns_per_zero_run_running: 20_000 } });
    const zero = simulate({ workload: web, options, link, host: zeroCalls });
    // Calls that cost nothing: only the zero pages inside data runs are charged as data, never faster.
    expect(zero.total_ms).toBeGreaterThanOrEqual(base.total_ms);
    expect(dear.total_ms).toBeGreaterThan(zero.total_ms);
  });
});

describe("calibrate's run streams and fit (calibrate-runs.ts, calibrate-bulk.ts)", () => {
  it("fits per call + per page exactly on exact points, and clamps a negative call at 0", () => {
    const pts = [1, 2, 4, 16].map((run) => ({ run, nsPerPage: 3000 + 12_000 / run }));
    const f = fitRuns(pts);
    expect(f.perRunNs).toBeCloseTo(12_000, 6);
    expect(f.perPageNs).toBeCloseTo(3000, 6);
    expect(fitRuns([1, 16].map((run) => ({ run, nsPerPage: 5000 - 100 / run }))).perRunNs).toBe(0);
    expect(() => fitRuns([{ run: 4, nsPerPage: 1 }, { run: 4, nsPerPage: 2 }])).toThrow(/two different run lengths/);
  });

  it("the stream's frames come in runs of the asked length, a page apart, and a whole frame is one run", () => {
    const F = framePages();
    expect(F).toBe(R);
    for (const run of [1, 2, 4, 8, 16, F]) {
      const pages = Array.from({ length: 4 * F }, (_, i) => runPage(i, run, F));
      let calls = 0;
      for (let f = 0; f < pages.length; f += F) calls += installRuns(pages.slice(f, f + F), pages.map(() => null)).zeroRuns;
      expect(calls, `runs of ${run}`).toBe(pages.length / run);
      expect(new Set(pages).size).toBe(pages.length);
    }
  });
});
