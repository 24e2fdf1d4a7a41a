/**
 * `fault_wake_us` (src/sim/host-cpu.ts): a destination vCPU that stood still
 * in a demand fault takes its next step that long after the install that
 * ended it (its thread waits for a core behind the migration's threads),
 * while its fault's latency still ends at the install. Without the key the
 * guest runs as before.
 */
import { describe, expect, it } from "vitest";
import { checkHostProfile, DEFAULT_HOST, type HostProfile } from "../src/sim/host.js";
import { faultWakeUs } from "../src/sim/host-cpu.js";
import { wakeFigure } from "../src/real/calibrate-wake.js";
import { Guest, GuestShared } from "../src/sim/guest.js";
import { simulate } from "../src/sim/simulation.js";
import { compilePhases, parseWorkload, type Workload } from "../src/workload/index.js";

/** One vCPU scanning 8 pages in order, 10 µs of compute a step (+ the access's 0.05). */
function scan(): Workload {
  return parseWorkload({
    ppsim_workload: 1,
    name: "scan",
    memory: 8 * 4096,
    vcpus: 1,
    zero_share: 0,
    phases: [{ steps: 1000, compute_ns: 10_000, write_share: 0, pattern: { kind: "sequential", stride: 1 } }],
  });
}

/** A destination guest resumed at 0 from a fresh source's state, every page present but `missing`. */
function destination(missing: number, wakeUs: number) {
  const w = scan();
  const shared = new GuestShared(w, compilePhases(w), 1);
  const stalls: [number, number][] = [];
  const src = new Guest("source", shared, () => undefined);
  src.boot(0);
  const state = src.pause(0);
  const dst = new Guest("destination", shared, (_v, p, at) => stalls.push([p, at]));
  for (let p = 0; p < w.pageCount; p++) if (p !== missing) dst.install(p, p + 1, 0);
  dst.wakeUs = wakeUs;
  dst.resume(0, state);
  return { shared, dst, stalls };
}

describe("a vCPU's wait for a core after its fault (fault_wake_us)", () => {
  it("resumes the vCPU wakeUs after the install; the fault's wait still ends at the install", () => {
    const { shared, dst, stalls } = destination(3, 500);
    dst.runUntil(1000);
    // Steps 0, 1, 2 done at 10.05, 20.1, 30.15 µs; the 4th access (page 3) stalls at 40.2 µs.
    expect(stalls.length).toBe(1);
    expect(stalls[0][0]).toBe(3);
    expect(stalls[0][1]).toBeCloseTo(40.2, 6);
    const before = shared.accesses;
    dst.install(3, 4, 100);
    // The retried access is counted at the wake; the next one comes 500 µs + a step after the install, not a step after it.
    expect(shared.accesses).toBe(before + 1);
    dst.runUntil(100 + 500 + 10.049);
    expect(shared.accesses).toBe(before + 1);
    dst.runUntil(100 + 500 + 10.051);
    expect(shared.accesses).toBe(before + 2);
    const f = shared.faults.figures();
    expect(f.vcpu_faults).toBe(1);
    expect(f.postcopy_latency_us).toBeCloseTo(100 - 40.2, 3);
  });

  it("without it the next step comes a step after the install, as before", () => {
    const { shared, dst } = destination(3, 0);
    dst.runUntil(1000);
    const before = shared.accesses;
    dst.install(3, 4, 100);
    dst.runUntil(100 + 10.051);
    expect(shared.accesses).toBe(before + 2);
  });

  it("a page installed before the vCPU ever stopped costs no wake", () => {
    const { shared, dst, stalls } = destination(3, 500);
    dst.runUntil(1000);
    const at = stalls[0][1];
    // Woken at the very time it stalled (the page came as the fault was handled): it never slept.
    dst.wake(0, at);
    const before = shared.accesses;
    dst.runUntil(at + 10.051);
    expect(shared.accesses).toBe(before + 1);
    expect(shared.faults.figures().vcpu_faults).toBe(0);
  });

  it("the profile key: checked, and in a post-copy the guest does less and faults less", () => {
    expect(faultWakeUs(null)).toBe(0);
    expect(faultWakeUs({})).toBe(0);
    expect(faultWakeUs({ fault_wake_us: 700 })).toBe(700);
    expect(() => checkHostProfile({ ...DEFAULT_HOST, fault_wake_us: -1 }, "p")).toThrow(/"fault_wake_us" must be a number ≥ 0/);
    const { fault_wake_us: _shipped, ...noWake } = DEFAULT_HOST;
    const w = parseWorkload({
      ppsim_workload: 1,
      name: "random",
      memory: "8MiB",
      vcpus: 2,
      zero_share: 0,
      warmup_ms: 10,
      phases: [{ steps: 1e9, compute_ns: 2000, write_share: 0.3, pattern: { kind: "uniform" } }],
    });
    // 16-page messages: at 50 MB/s a 256-page one takes 21 ms, longer than the waits this compares.
    const run = (host: HostProfile) => simulate({ workload: w, link: { bandwidthBytesPerSec: 50e6, latencyUs: 50 }, options: { mode: "postcopy", batchPages: 16 }, host, seed: 3 });
    const without = run(noWake);
    const withWake = run({ ...noWake, fault_wake_us: 1000 });
    expect(without.verified).toBe(true);
    expect(withWake.verified).toBe(true);
    expect(without.demand_faults).toBeGreaterThan(50);
    // Each fault costs the vCPU a millisecond more: it reaches fewer missing pages before the stream brings them.
    expect(withWake.demand_faults).toBeLessThan(without.demand_faults * 0.8);
    expect(withWake.sim?.guest_accesses ?? 0).toBeLessThan(without.sim?.guest_accesses ?? 0);
    // The stream's work is the same: every page goes once.
    expect(withWake.pages_sent).toBe(without.pages_sent);
  });

  it("calibrate's figure: the mean wait at nice 19 over the mean at nice 0, never below 0, none without both", () => {
    expect(wakeFigure({ niceUs: [1000, 3000], baseUs: [100, 300] })).toBeCloseTo(1800, 9);
    expect(wakeFigure({ niceUs: [100], baseUs: [300] })).toBe(0);
    expect(wakeFigure({ niceUs: [], baseUs: [300] })).toBeNull();
    expect(wakeFigure({ niceUs: [300], baseUs: [] })).toBeNull();
  });
});
