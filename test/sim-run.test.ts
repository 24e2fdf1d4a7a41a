/**
 * End-to-end simulations: every example workload in every mode, at 64 MiB so
 * the whole file stays fast, must complete with the destination's memory
 * equal to what the guest wrote.
 */
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { MODES, type Mode } from "../src/engine/messages.js";
import { parseLink, simulate, Simulation, type SimConfig } from "../src/sim/index.js";
import { loadWorkload, withMemory, type Workload } from "../src/workload/index.js";

const MIB = 1024 * 1024;
const EXAMPLES = readdirSync("examples")
  .filter((f) => f.endsWith(".json"))
  .map((f) => f.replace(/\.json$/, ""));
const small = (name: string, mib = 64): Workload => withMemory(loadWorkload(`examples/${name}.json`), mib * MIB);
const GIGABIT = parseLink("1Gbit,0.1ms");

function config(name: string, mode: Mode, extra: Partial<SimConfig> = {}): SimConfig {
  return { workload: small(name), link: GIGABIT, options: { mode }, seed: 7, ...extra };
}

describe("simulated migrations", () => {
  const cases = EXAMPLES.flatMap((name) => MODES.map((mode) => [name, mode] as const));
  it.each(cases)("%s, %s: completes with every page right", (name, mode) => {
    const sim = new Simulation(config(name, mode));
    const report = sim.runToEnd();
    expect(report.outcome, String(report.reason)).toBe("completed");
    expect(sim.verify()).toEqual({ ok: true, mismatches: 0 });
    expect(report.verified).toBe(true);
    expect(report.mode).toBe(mode);
    expect(report.mem_bytes).toBe(64 * MIB);
    expect(report.pages_sent).toBeGreaterThanOrEqual(64 * MIB / 4096);
    const g = report.guest;
    expect(g).not.toBeNull();
    expect(g?.utilization).toBeGreaterThanOrEqual(0);
    expect(g?.utilization).toBeLessThanOrEqual(1);
    expect(g?.work_lost_vcpu_s).toBeGreaterThanOrEqual(0);
    expect(g?.span_ms).toBeCloseTo(report.total_ms, 0);
    // The log holds every step's work: what it adds up to is the reported utilization.
    const trace = sim.progressTrace();
    const logged = trace.work.reduce((a, w) => a + w.reduce((x, y) => x + y, 0), 0);
    expect(logged / (trace.spanUs * trace.work.length)).toBeCloseTo(g?.utilization ?? -1, 3);
    if (mode === "postcopy" && report.demand_faults > 0) expect(g?.faults?.vcpu_faults).toBeGreaterThan(0);
    if (mode === "postcopy") expect(report.downtime_ms).toBeLessThan(1);
    expect(sim.done).toBe(true);
  });

  it("is deterministic: one config and seed, one report, byte for byte", () => {
    const cfg = config("web-server", "hybrid", { outages: [{ atMs: 300, durationMs: 20 }] });
    const a = JSON.stringify(simulate(cfg));
    expect(JSON.stringify(simulate(cfg))).toBe(a);
    expect(JSON.stringify(simulate({ ...cfg, seed: 8 }))).not.toBe(a);
  });

  it("post-copy recovers from a link outage without losing a page", () => {
    const sim = new Simulation(config("web-server", "postcopy", { outages: [{ atMs: 200, durationMs: 50 }] }));
    const report = sim.runToEnd();
    expect(report.outcome, String(report.reason)).toBe("completed");
    expect(sim.verify().ok).toBe(true);
    expect((report.sim as { messages_lost: number }).messages_lost).toBeGreaterThan(0);
  });

  it("pre-copy fails on a link outage before switchover, leaving the source guest running", () => {
    const sim = new Simulation(config("web-server", "precopy", { outages: [{ atMs: 200, durationMs: 50 }] }));
    const report = sim.runToEnd();
    expect(report.outcome).toBe("failed");
    expect(report.reason).toMatch(/link/);
    expect(report.verified).toBeNull();
  });

  it("cancels during pre-copy and leaves the source running", () => {
    const sim = new Simulation(config("database", "precopy"));
    sim.advanceTo(100);
    expect(sim.nowMs).toBe(100);
    expect(sim.done).toBe(false);
    expect(sim.cancel("operator")).toBeNull();
    expect(sim.done).toBe(true);
    const report = sim.report();
    expect(report?.outcome).toBe("cancelled");
    expect(report?.verified).toBeNull();
    expect(sim.snapshot().notice).toMatch(/cancelled/);
  });

  it("refuses to cancel once the guest has switched over", () => {
    const sim = new Simulation(config("web-server", "postcopy"));
    sim.advanceTo(20);
    const refusal = sim.cancel("operator");
    expect(refusal).toEqual(expect.any(String));
    expect(sim.snapshot().notice).toMatch(/refused/);
    expect(sim.runToEnd().outcome).toBe("completed");
    expect(sim.verify().ok).toBe(true);
  });

  it("gives up after maxVirtualMs with a reason", () => {
    const report = simulate(config("database", "precopy", { maxVirtualMs: 200, options: { mode: "precopy", autoConverge: false } }));
    expect(report.outcome).toBe("failed");
    expect(report.reason).toMatch(/maxVirtualMs/);
    expect(report.total_ms).toBeCloseTo(200, 0);
  });

  it("demand requests wait longer behind bulk pages on a shared channel", () => {
    const separate = simulate(config("web-server", "postcopy"));
    const shared = simulate(config("web-server", "postcopy", { link: { ...GIGABIT, sharedChannel: true } }));
    expect(shared.fault_latency_us.p50).toBeGreaterThan(separate.fault_latency_us.p50);
  });

  it("shows live snapshots on the virtual clock", () => {
    const sim = new Simulation(config("web-server", "postcopy"));
    sim.advanceTo(-100);
    expect(sim.snapshot().guestProgress).toBeCloseTo(1, 2);
    sim.advanceTo(50);
    const snap = sim.snapshot();
    expect(snap.elapsedMs).toBeCloseTo(50, 3);
    expect(snap.phase).toBe("postcopy");
    expect(snap.pageCount).toBe(16384);
    expect(snap.present.background + snap.present.demand).toBeGreaterThan(0);
    expect(snap.guestProgress).toBeGreaterThanOrEqual(0);
    expect(snap.guestProgress).toBeLessThan(1);
    expect(snap.report).toBeNull();
    sim.runToEnd();
    expect(sim.snapshot().report?.outcome).toBe("completed");
  });
});
