import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { deriveDisruption, FaultLog, MMU_WINDOWS_MS, ProgressRecorder, utilizationTimeline, type ProgressTrace } from "../src/disruption/index.js";
import { pagesMsg } from "./support/pages.js";

const SLOT = 100;

/** A hand-made log: `vcpus` vCPUs over `spanMs`, at full speed except where `rate(v, tUs)` says otherwise. */
function trace(spanMs: number, vcpus: number, rate: (v: number, tUs: number) => number): ProgressTrace {
  const n = Math.ceil((spanMs * 1000) / SLOT);
  const work = Array.from({ length: vcpus }, (_, v) => {
    const w = new Float64Array(n);
    // Integrate the rate over each slot in 1 µs steps.
    for (let i = 0; i < n; i++) for (let t = 0; t < SLOT; t++) w[i] += rate(v, i * SLOT + t + 0.5);
    return w;
  });
  return { slotUs: SLOT, spanUs: spanMs * 1000, baselinePerUs: 1, work };
}

const stalled = (from: number, to: number) => (_v: number, t: number) => (t >= from && t < to ? 0 : 1);
const mmuAt = (d: ReturnType<typeof deriveDisruption>, ms: number) => d.mmu.find((p) => p.window_ms === ms)?.min_utilization;

describe("disruption figures from a progress log", () => {
  it("an undisturbed guest lost nothing and was always responsive", () => {
    const d = deriveDisruption(trace(500, 2, () => 1));
    expect(d.work_lost_vcpu_s).toBe(0);
    expect(d.utilization).toBe(1);
    expect(d.stalls.count).toBe(0);
    expect(d.longest_stall_ms).toBe(0);
    expect(d.time_to_responsive_ms).toBe(0);
    for (const p of d.mmu) expect(p.min_utilization).toBe(1);
  });

  it("one 100 ms stall of one vCPU gives a known MMU curve, lost work and responsiveness", () => {
    const d = deriveDisruption(trace(1000, 1, stalled(200_000, 300_000)));
    expect(d.work_lost_vcpu_s).toBeCloseTo(0.1, 6);
    expect(d.utilization).toBeCloseTo(0.9, 6);
    expect(d.stalls.count).toBe(1);
    expect(d.longest_stall_ms).toBeCloseTo(100, 3);
    expect(d.stalls.log2_us[16]).toBe(1); // 100 000 µs is in [2^16, 2^17)
    expect(mmuAt(d, 1)).toBe(0);
    expect(mmuAt(d, 100)).toBe(0);
    expect(mmuAt(d, 200)).toBeCloseTo(0.5, 4);
    expect(mmuAt(d, 500)).toBeCloseTo(0.8, 4);
    expect(mmuAt(d, 1000)).toBeCloseTo(0.9, 4);
    // Windows longer than the span reach past its end, where the guest runs at full speed.
    expect(mmuAt(d, 10000)).toBeCloseTo(0.99, 4);
    // The last 100 ms window below 90 % starts just before 290 ms (it holds > 10 ms of the stall).
    expect(d.time_to_responsive_ms).toBeCloseTo(290, 1);
  });

  it("measures a stall that starts and ends inside slots exactly", () => {
    const d = deriveDisruption(trace(400, 1, stalled(100_050, 150_050)));
    expect(d.longest_stall_ms).toBeCloseTo(50, 3);
    expect(d.work_lost_vcpu_s).toBeCloseTo(0.05, 6);
  });

  it("keeps vCPUs apart and averages them for the whole guest", () => {
    const d = deriveDisruption(trace(1000, 2, (v, t) => (v === 1 && t >= 400_000 && t < 600_000 ? 0 : 1)));
    expect(d.per_vcpu[0].work_lost_vcpu_s).toBe(0);
    expect(d.per_vcpu[1].work_lost_vcpu_s).toBeCloseTo(0.2, 6);
    expect(d.per_vcpu[1].stalls.longest_ms).toBeCloseTo(200, 3);
    expect(d.work_lost_vcpu_s).toBeCloseTo(0.2, 6);
    expect(mmuAt(d, 100)).toBeCloseTo(0.5, 4);
    expect(d.per_vcpu[1].mmu[MMU_WINDOWS_MS.indexOf(100)]).toBe(0);
    expect(d.per_vcpu[0].mmu[MMU_WINDOWS_MS.indexOf(100)]).toBe(1);
  });

  it("a half-speed guest (throttled) has no stall but loses half its work", () => {
    const d = deriveDisruption(trace(300, 1, () => 0.5));
    expect(d.stalls.count).toBe(0);
    expect(d.work_lost_vcpu_s).toBeCloseTo(0.15, 6);
    expect(mmuAt(d, 10)).toBeCloseTo(0.5, 4);
    // From 280 ms on every 100 ms window holds at most 20 ms at half speed: 90 %.
    expect(d.time_to_responsive_ms).toBeCloseTo(280, 0);
  });

  it("windows below the slot width have no figure", () => {
    const t = trace(50, 1, () => 1);
    const d = deriveDisruption({ ...t, slotUs: 2000, work: [new Float64Array(25).fill(2000)] });
    expect(mmuAt(d, 1)).toBeNull();
    expect(mmuAt(d, 2)).toBe(1);
  });

  it("property: lost work + work done = span × vCPUs, and the MMU lies in [0, 1]", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 20, maxLength: 20 }), { minLength: 1, maxLength: 3 }), (rates) => {
        const work = rates.map((r) => Float64Array.from(r, (x) => x * SLOT));
        const d = deriveDisruption({ slotUs: SLOT, spanUs: 20 * SLOT, baselinePerUs: 1, work });
        const done = work.reduce((a, w) => a + w.reduce((x, y) => x + y, 0), 0);
        expect(Math.abs(d.work_lost_vcpu_s * 1e6 + done - 20 * SLOT * rates.length)).toBeLessThanOrEqual(50); // rounded to 0.1 ms
        for (const p of d.mmu) if (p.min_utilization !== null) expect(p.min_utilization).toBeGreaterThanOrEqual(0);
        for (const p of d.mmu) if (p.min_utilization !== null) expect(p.min_utilization).toBeLessThanOrEqual(1);
      }),
      { numRuns: 50 },
    );
  });
});

describe("ProgressRecorder", () => {
  it("adds work into slots from the start and ignores work outside recording", () => {
    const r = new ProgressRecorder(2, 1, 10, 8);
    r.add(0, 5, 3);
    r.start(100);
    r.add(0, 100, 1);
    r.add(0, 109, 2);
    r.add(1, 125, 4);
    r.stop(130);
    r.add(0, 131, 9);
    const t = r.trace();
    expect(t.spanUs).toBe(30);
    expect(Array.from(t.work[0])).toEqual([3, 0, 0]);
    expect(Array.from(t.work[1])).toEqual([0, 0, 4]);
  });

  it("merges slot pairs and doubles the width when it runs out of slots", () => {
    const r = new ProgressRecorder(1, 1, 1, 4);
    r.start(0);
    for (let t = 0; t < 8; t++) r.add(0, t, t + 1);
    const t = r.trace();
    expect(t.slotUs).toBe(2);
    expect(Array.from(t.work[0])).toEqual([3, 7, 11, 15]);
  });

  it("a timeline averages slots into at most the asked number of points", () => {
    const t = trace(100, 2, stalled(0, 50_000));
    const tl = utilizationTimeline(t, 10);
    expect(tl.t_ms).toHaveLength(10);
    expect(tl.per_vcpu[0][0]).toBe(0);
    expect(tl.per_vcpu[1][9]).toBe(1);
  });
});

describe("FaultLog (QEMU 10.1 vocabulary)", () => {
  it("averages waits overall and per vCPU and buckets them in powers of two µs", () => {
    const f = new FaultLog(3);
    f.add(0, 100);
    f.add(0, 300);
    f.add(1, 0.5);
    f.add(7, 10); // no such vCPU: ignored
    const q = f.figures();
    expect(q.vcpu_faults).toBe(3);
    expect(q.postcopy_latency_us).toBeCloseTo(400.5 / 3, 3);
    expect(q.postcopy_vcpu_latency_us).toEqual([200, 0.5, 0]);
    expect(q.postcopy_latency_dist).toHaveLength(24);
    expect(q.postcopy_latency_dist[0]).toBe(1);
    expect(q.postcopy_latency_dist[6]).toBe(1); // 100 µs in [64, 128)
    expect(q.postcopy_latency_dist[8]).toBe(1); // 300 µs in [256, 512)
    expect(q.postcopy_vcpu_blocktime_ms).toEqual([0.4, 0.001, 0]);
  });
});

describe("per-vCPU fault figures of a real run", () => {
  it("maps the destination's thread ids to vCPUs and ignores waits of other threads", async () => {
    const { vcpuFaultFigures } = await import("../src/disruption/faults.js");
    const waits = { ids: [501, 77, 500], count: [2, 1, 1], sumUs: [300, 9, 40], dist: Array.from({ length: 24 }, (_, i) => (i === 5 ? 3 : i === 8 ? 1 : 0)) };
    const f = vcpuFaultFigures(waits, [500, 501], 2);
    expect(f?.postcopy_vcpu_latency_us).toEqual([40, 150]);
    expect(f?.postcopy_vcpu_blocktime_ms).toEqual([0.04, 0.3]);
    expect(f?.vcpu_faults).toBe(3);
    expect(vcpuFaultFigures(waits, [500], 2)).toBeNull();
    expect(vcpuFaultFigures(waits, [500, "501"], 2)).toBeNull();
  });
  it("the destination engine counts each waiting vCPU's wait once its page arrives", async () => {
    const { Destination, resolveOptions } = await import("../src/engine/index.js");
    const d = new Destination<number>(resolveOptions({ mode: "postcopy" }));
    d.handle({ kind: "message", channel: "bulk", msg: { type: "hello", version: 1, capabilities: 7, pageSize: 4096, pageCount: 8, mode: "postcopy" } }, 0);
    d.handle({ kind: "message", channel: "bulk", msg: { type: "switchover", stale: new Uint32Array(0), cpuState: new Uint8Array(0) } }, 10);
    d.handle({ kind: "fault", page: 3, vcpu: 9 }, 100);
    d.handle({ kind: "fault", page: 3, vcpu: 4 }, 150);
    d.handle({ kind: "message", channel: "bulk", msg: pagesMsg([{ page: 3, data: 1 }]) }, 400);
    const w = d.metrics.vcpuWaits;
    expect(w.ids).toEqual([9, 4]);
    expect(w.count).toEqual([1, 1]);
    expect(w.sumUs).toEqual([300, 250]);
    expect(w.dist[8]).toBe(1); // 300 µs: [256, 512)
    expect(w.dist[7]).toBe(1); // 250 µs: [128, 256)
  });
});

describe("a destination report's per-vCPU waits come from a peer", () => {
  it("are refused when malformed or oversized", async () => {
    const { parseDestReport } = await import("../src/real/report-msg.js");
    const { emptyDestinationMetrics } = await import("../src/engine/metrics.js");
    const report = (vcpuWaits: unknown) => JSON.stringify({ kind: "progress", metrics: { ...emptyDestinationMetrics(), vcpuWaits }, steps: null, at: 0 });
    expect(parseDestReport(report(emptyDestinationMetrics().vcpuWaits)).kind).toBe("progress");
    const bad = [
      undefined,
      { ids: [1], count: [], sumUs: [], dist: new Array(24).fill(0) },
      { ids: [], count: [], sumUs: [], dist: [1] },
      { ids: [-1], count: [1], sumUs: [1], dist: new Array(24).fill(0) },
      { ids: new Array(5000).fill(1), count: new Array(5000).fill(1), sumUs: new Array(5000).fill(1), dist: new Array(24).fill(0) },
    ];
    for (const w of bad) expect(() => parseDestReport(report(w))).toThrow(/vcpuWaits is malformed/);
  });
});
