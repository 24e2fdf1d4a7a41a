/**
 * The host profile's CPU keys (src/sim/host-cpu.ts): the page stream bound
 * by its CPU over the cores available, a page reply's wait for a busy loop
 * turn, the destination guest slowed while pages stream; refused when out
 * of range; a profile without them charges what it always did.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { checkHostProfile, DEFAULT_HOST, messageCostUs, type HostProfile } from "../src/sim/host.js";
import { CPU_KEYS, requestWaitUs, streamCpuUs, streamDuty, streamingThrottle, withStreaming } from "../src/sim/host-cpu.js";
import { RUN_KEYS } from "../src/sim/host-runs.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";

/** The shipped profile without its CPU keys and without the fault lane: faults go through both loops, where the cores' waits are charged. */
// Without the stream's per-call keys too (host-runs.ts; test/host-runs.test.ts charges them).
const BASE: HostProfile = Object.fromEntries(Object.entries(DEFAULT_HOST).filter(([k]) => !(CPU_KEYS as readonly string[]).includes(k) && !(RUN_KEYS as readonly string[]).includes(k) && k !== "fault_lane_us")) as unknown as HostProfile;
const CPU = { cores_available: 1, bulk_cpu_ns_per_page: 6000, engine_ns_per_page: 2000, guest_share_streaming: 0.05, urgent_extra_us: 10, loop_turn_pages: 512 };
const fast = { bandwidthBytesPerSec: 10e9, latencyUs: 20 };

describe("the host's cores (host-cpu.ts)", () => {
  it("the figures: stream CPU over the cores, half a loop turn, the guest's throttle", () => {
    expect(streamCpuUs(CPU, 16)).toBeCloseTo((16 * 8000) / 1000, 6);
    expect(streamCpuUs({ ...CPU, cores_available: 2 }, 16)).toBeCloseTo(64, 6);
    expect(streamCpuUs({}, 16)).toBe(0);
    // 512 pages × 1000 ns (the destination's half) = 512 µs a turn; half of it, plus the measured extra.
    expect(requestWaitUs(CPU)).toBeCloseTo(10 + 256, 6);
    expect(requestWaitUs({})).toBe(0);
    expect(streamingThrottle(CPU)).toBeCloseTo(0.95, 9);
    expect(streamingThrottle({})).toBe(0);
    const pages = { type: "pages" as const, pages: Uint32Array.from({ length: 16 }, (_, i) => i), data: Array.from({ length: 16 }, () => new Uint8Array(4096)) };
    expect(messageCostUs({ ...BASE, ...CPU }, pages).sendUs).toBeCloseTo(128, 6);
    expect(messageCostUs({ ...BASE, ...CPU }, { type: "pageRequest", page: 3 }).extraUs).toBeCloseTo(266, 6);
    expect(messageCostUs(BASE, { type: "pageRequest", page: 3 }).extraUs).toBe(0);
  });

  it("the stream's measured wall time per page with data and per hole bounds a pages message (not its CPU over the cores)", () => {
    const wall = { ...CPU, stream_ns_per_page: 5000, stream_ns_per_zero_page: 2000 };
    // 12 pages with data, 4 holes: 12 × 5 + 4 × 2 µs, and 16 × 2000 ns of the engines over 1 core.
    expect(streamCpuUs(wall, 16, 4)).toBeCloseTo(60 + 8 + 32, 6);
    expect(streamCpuUs({ ...wall, cores_available: 2 }, 16, 4)).toBeCloseTo(60 + 8 + 16, 6);
    // Without the hole figure a hole costs what a page does; more holes than pages are the pages.
    expect(streamCpuUs({ ...CPU, stream_ns_per_page: 5000 }, 16, 4)).toBeCloseTo(80 + 32, 6);
    expect(streamCpuUs(wall, 16, 99)).toBeCloseTo(32 + 32, 6);
    const data = Array.from({ length: 16 }, (_, i) => (i < 4 ? null : new Uint8Array(4096)));
    const pages = { type: "pages" as const, pages: Uint32Array.from({ length: 16 }, (_, i) => i), data };
    expect(messageCostUs({ ...BASE, ...wall }, pages).sendUs).toBeCloseTo(100, 6);
    expect(() => checkHostProfile({ ...BASE, ...wall, stream_ns_per_zero_page: -1 }, "p")).toThrow(/"stream_ns_per_zero_page" must be a number ≥ 0/);
  });

  it("once the destination's guest runs, its pages cost the stream the running figures (userfaultfd installs)", () => {
    const wall = { ...CPU, engine_ns_per_page: 0, stream_ns_per_page: 5000, stream_ns_per_zero_page: 2000, stream_ns_per_page_running: 7000, stream_ns_per_zero_page_running: 3000 };
    expect(streamCpuUs(wall, 16, 4, false)).toBeCloseTo(60 + 8, 6);
    expect(streamCpuUs(wall, 16, 4, true)).toBeCloseTo(84 + 12, 6);
    // A profile without them charges the figures from before the switchover.
    expect(streamCpuUs({ ...CPU, engine_ns_per_page: 0, stream_ns_per_page: 5000, stream_ns_per_zero_page: 2000 }, 16, 4, true)).toBeCloseTo(68, 6);
    const data = Array.from({ length: 16 }, (_, i) => (i < 4 ? null : new Uint8Array(4096)));
    const pages = { type: "pages" as const, pages: Uint32Array.from({ length: 16 }, (_, i) => i), data };
    expect(messageCostUs({ ...BASE, ...wall }, pages, true).sendUs).toBeCloseTo(96, 6);
    // Post-copy of a hand-made guest: slower installs once it runs, a longer migration; pre-copy (the guest never runs at the destination before the end) alike.
    const web = withMemory(loadWorkload("examples/web-server.json"), 32 * 1024 * 1024);
    const run = (mode: "postcopy" | "precopy", h: HostProfile) => simulate({ workload: web, options: { mode }, link: fast, host: h });
    const slowRunning = { ...BASE, ...wall, stream_ns_per_page_running: 20000 };
    expect(run("postcopy", slowRunning).total_ms).toBeGreaterThan(run("postcopy", { ...BASE, ...wall }).total_ms);
    expect(run("precopy", slowRunning).rounds).toEqual(run("precopy", { ...BASE, ...wall }).rounds);
  });

  it("property: a pages message holds the stream no shorter for a slower page, a slower hole, more pages or fewer cores", () => {
    const ns = fc.double({ min: 0, max: 1e5, noNaN: true });
    fc.assert(
      fc.property(ns, ns, ns, fc.double({ min: 0.01, max: 64, noNaN: true }), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 64 }), ns, (page, hole, engine, cores, n, z, more) => {
        const h = { cores_available: cores, stream_ns_per_page: page, stream_ns_per_zero_page: hole, engine_ns_per_page: engine };
        const at = streamCpuUs(h, n, z);
        expect(at).toBeGreaterThanOrEqual(0);
        expect(streamCpuUs({ ...h, stream_ns_per_page: page + more }, n, z)).toBeGreaterThanOrEqual(at - 1e-9);
        expect(streamCpuUs({ ...h, stream_ns_per_zero_page: hole + more }, n, z)).toBeGreaterThanOrEqual(at - 1e-9);
        expect(streamCpuUs(h, n + 1, z)).toBeGreaterThanOrEqual(at - 1e-9);
        expect(streamCpuUs({ ...h, cores_available: cores / 2 }, n, z)).toBeGreaterThanOrEqual(at - 1e-9);
      }),
    );
  });

  it("refuses CPU keys out of range, takes a profile without them", () => {
    expect(checkHostProfile(BASE, "p")).toEqual(BASE);
    expect(checkHostProfile({ ...BASE, ...CPU }, "p").cores_available).toBe(1);
    expect(() => checkHostProfile({ ...BASE, ...CPU, cores_available: 0 }, "p")).toThrow(/"cores_available" must be in \[0.01, 4096\]/);
    expect(() => checkHostProfile({ ...BASE, ...CPU, guest_share_streaming: 1.5 }, "p")).toThrow(/"guest_share_streaming" must be in \(0, 1\]/);
    expect(() => checkHostProfile({ ...BASE, ...CPU, engine_ns_per_page: -1 }, "p")).toThrow(/"engine_ns_per_page" must be a number ≥ 0/);
    expect(() => checkHostProfile({ ...BASE, ...CPU, loop_turn_pages: "x" }, "p")).toThrow(/"loop_turn_pages" must be a number/);
  });

  it("post-copy on one busy host: a slower stream, a slower guest (fewer faults), longer replies; deterministic", () => {
    const web = withMemory(loadWorkload("examples/web-server.json"), 64 * 1024 * 1024);
    const run = (host: HostProfile) => simulate({ workload: web, options: { mode: "postcopy" }, link: fast, host });
    const plain = run(BASE);
    const busy = run({ ...BASE, ...CPU });
    expect(busy.verified).toBe(true);
    // 16384 pages at ≥ 8 µs of CPU on one core: ≥ 131 ms of background.
    expect(busy.total_ms).toBeGreaterThan(plain.total_ms + 60);
    expect(busy.total_ms).toBeGreaterThan((16384 * 8) / 1000);
    expect(busy.demand_faults).toBeLessThan(plain.demand_faults);
    expect(busy.fault_latency_us.p50).toBeGreaterThan(plain.fault_latency_us.p50 + 200);
    expect(run({ ...BASE, ...CPU })).toEqual(busy);
    // With the fault lane (the shipped profile's) no loop is on a fault's way: the loop turn's wait is not charged.
    const laned = run({ ...BASE, ...CPU, fault_lane_us: DEFAULT_HOST.fault_lane_us });
    expect(laned.verified).toBe(true);
    expect(laned.fault_latency_us.p50).toBeLessThan(busy.fault_latency_us.p50);
    expect(laned.fault_latency_us.p50).toBeGreaterThan(DEFAULT_HOST.fault_lane_us ?? Infinity);
    expect(busy.host?.cores_available).toBe(1);
  });

  it("a link slower than the stream leaves the guest the cycles the stream waits: its throttle scales with the stream's duty", () => {
    const wall = { cores_available: 2, stream_ns_per_page: 4101, guest_share_streaming: 0.5 };
    // 4101 B a page (4096 + its entry) at 1 GB/s: 4101 ns on the wire, the stream's own 4101 ns: busy all the time.
    expect(streamDuty(wall, 1e9)).toBeCloseTo(1, 9);
    expect(streamDuty(wall, 10e9)).toBe(1);
    expect(streamDuty(wall, 125e6)).toBeCloseTo(0.125, 9);
    // Without the stream's wall figure, its CPU over the cores; without either, busy (as before the duty).
    expect(streamDuty({ cores_available: 2, bulk_cpu_ns_per_page: 8202 }, 125e6)).toBeCloseTo(0.125, 9);
    expect(streamDuty({ guest_share_streaming: 0.5 }, 125e6)).toBe(1);
    expect(withStreaming(wall, 0)).toBeCloseTo(0.5, 9);
    expect(withStreaming(wall, 0, 0.125)).toBeCloseTo(0.0625, 9);
    expect(withStreaming(wall, 0.2, 0.125)).toBeCloseTo(1 - 0.8 * 0.9375, 9);
    // In a run: the same profile on a 1 Gbit/s link leaves the pre-copy guest more of its speed (it dirties more) than a busy stream would.
    const web = withMemory(loadWorkload("examples/web-server.json"), 32 * 1024 * 1024);
    const slow = { bandwidthBytesPerSec: 125e6, latencyUs: 50 };
    const host = { ...BASE, ...wall };
    const scaled = simulate({ workload: web, options: { mode: "precopy" }, link: slow, host });
    const busy = simulate({ workload: web, options: { mode: "precopy" }, link: slow, host: { ...host, stream_ns_per_page: 40_000 } });
    expect(scaled.verified).toBe(true);
    expect(scaled.guest?.utilization ?? 0).toBeGreaterThan(busy.guest?.utilization ?? 1);
  });
});
