/**
 * Real migrations on loopback: a source agent and a destination agent (in
 * this process), each with its guest process, move a 256 MiB guest in
 * post-copy for every example workload; the destination's final memory must
 * hash like an unmigrated run of the same workload, seed and steps. One run
 * also loses its link mid-way through post-copy and must recover; pre-copy
 * and hybrid (dirty tracking through PAGEMAP_SCAN) run once each.
 *
 * These need userfaultfd. They skip, saying why, only when the kernel or the
 * permissions refuse it; pass/fail never depends on timing.
 */
import { readdirSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Mode } from "../src/engine/messages.js";
import type { Report } from "../src/engine/report.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { userfaultfdUnavailable } from "./support/uffd.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { loadWorkload } from "../src/workload/parse.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping real migrations: userfaultfd is unavailable here: ${unavailable}`);

const MEM = 256 * 1024 * 1024;
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function migrate(file: string, extra: { breakLinkAfterPostcopyBytes?: number; mode?: Mode } = {}): Promise<{ report: Report; log: string[] }> {
  const log: string[] = [];
  const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
  cleanups.push(() => dest.close());
  const workload = scaleWorkload(loadWorkload(file), MEM);
  const src = await SourceAgent.start({
    workload,
    seed: 7,
    peer: { host: "127.0.0.1", port: dest.port },
    log: (l) => log.push(`[src] ${l}`),
    ...extra,
    mode: extra.mode ?? "postcopy",
  });
  cleanups.push(() => src.close());
  const report = await src.migrate();
  return { report, log };
}

function explain(r: Report, log: string[]): string {
  return `${r.outcome}: ${String(r.reason)}\n${log.join("\n")}`;
}

/**
 * The downtime the guest has (source's last vCPU park → destination's first
 * vCPU step) is the report's downtime, and every stamp of the switchover is
 * in causal order (each leg starts once the one before it ended; 2 µs for
 * the clocks' rounding), so nothing of the agents' span is lost or counted twice.
 */
function expectGuestDowntime(r: Report, log: string[]): void {
  const b = r.real_switchover;
  expect(b?.guest_ms, explain(r, log)).toBeDefined();
  if (b?.guest_ms === undefined || b.trace_us === undefined || b.agents_ms === undefined || b.after_first_step_ms === undefined) return;
  expect(r.downtime_ms).toBe(b.guest_ms);
  expect(b.guest_ms).toBeGreaterThan(0);
  const t = b.trace_us;
  const order = ["asked", "source_pause_read", "source_last_park", "paused", "engine_done", "sent", "frame_at_destination", "arrived", "dest_resume_read", "dest_vcpus_started", "dest_first_step"];
  for (const k of order) expect(t[k], `${k} in ${JSON.stringify(t)}`).toBeDefined();
  for (let i = 1; i < order.length; i++) expect(t[order[i]] + 2, `${order[i - 1]} ≤ ${order[i]} in ${JSON.stringify(t)}`).toBeGreaterThanOrEqual(t[order[i - 1]]);
  // The RESUME reply comes after the guest's control thread read the RESUME (the vCPUs' first steps may come after the reply).
  expect(t.resumed + 2).toBeGreaterThanOrEqual(t.dest_resume_read);
  expect(-t.asked / 1000 + b.guest_ms + b.after_first_step_ms).toBeCloseTo(b.agents_ms, 2);
}

describe.skipIf(unavailable !== null)("real post-copy migration of a 256 MiB guest on loopback", () => {
  const examples = readdirSync("examples").filter((f) => f.endsWith(".json")).sort();

  for (const f of examples) {
    it(`${f}: completes and verifies`, async () => {
      const { report: r, log } = await migrate(`examples/${f}`);
      expect(r.outcome, explain(r, log)).toBe("completed");
      expect(r.verified, explain(r, log)).toBe(true);
      expect(r.backend).toBe("real");
      expect(r.mode).toBe("postcopy");
      expect(r.mem_bytes).toBe(MEM);
      expect(r.pages_sent).toBe(MEM / 4096);
      expect(r.pages_resent).toBe(0);
      expect(r.switchover_reason).toBe("postcopy");
      // The destination reported its side: what it holds came from somewhere.
      expect(r.downtime_ms).toBeGreaterThan(0);
      expectGuestDowntime(r, log);
      // QEMU's fault vocabulary, per vCPU: every wait the destination counted belongs to a vCPU thread.
      const faults = r.guest?.faults;
      expect(faults, explain(r, log)).toBeTruthy();
      if (faults) {
        expect(faults.postcopy_vcpu_latency_us).toHaveLength(r.guest?.per_vcpu.length ?? -1);
        expect(faults.vcpu_faults).toBe(faults.postcopy_latency_dist.reduce((a, b) => a + b, 0));
        expect(faults.vcpu_faults).toBeGreaterThanOrEqual(r.demand_faults);
      }
      // Over plain TCP the bulk pages move through the native data plane, at both ends.
      expect(log.join("\n")).toMatch(/\[src\] bulk pages: native data plane/);
      expect(log.join("\n")).toMatch(/\[dst\] .*bulk connection over the native receiver/);
    });
  }

  it("recovers from a link broken mid-way through post-copy, and still verifies", async () => {
    const { report: r, log } = await migrate("examples/web-server.json", { breakLinkAfterPostcopyBytes: 64 * 1024 * 1024 });
    expect(r.outcome, explain(r, log)).toBe("completed");
    expect(r.recoveries, explain(r, log)).toBeGreaterThanOrEqual(1);
    expect(r.verified, explain(r, log)).toBe(true);
    expect(log.join("\n")).toMatch(/link down: link broken on purpose/);
    expect(log.join("\n")).toMatch(/link to 127\.0\.0\.1:\d+ re-established/);
    expect(log.join("\n")).toMatch(/\[src\] bulk pages: native data plane/);
  });

  // The same driver with dirty tracking (async write-protect + PAGEMAP_SCAN on the source guest).
  for (const mode of ["precopy", "hybrid"] as const) {
    it(`web-server.json in ${mode}: completes and verifies`, async () => {
      const { report: r, log } = await migrate("examples/web-server.json", { mode });
      expect(r.outcome, explain(r, log)).toBe("completed");
      expect(r.verified, explain(r, log)).toBe(true);
      expect(r.rounds.length).toBeGreaterThanOrEqual(1);
      expect(log.join("\n")).toMatch(/\[src\] bulk pages: native data plane/);
    });
  }

  // The JS path (what TLS uses) stays whole: PPSIM_DATAPLANE=js at both ends.
  it("with the native data plane off (PPSIM_DATAPLANE=js), post-copy still completes and verifies", async () => {
    process.env.PPSIM_DATAPLANE = "js";
    cleanups.push(async () => void delete process.env.PPSIM_DATAPLANE);
    const { report: r, log } = await migrate("examples/web-server.json");
    expect(r.outcome, explain(r, log)).toBe("completed");
    expect(r.verified, explain(r, log)).toBe(true);
    expect(log.join("\n")).toMatch(/\[src\] bulk pages: through Node/);
    expect(log.join("\n")).not.toMatch(/native receiver/);
  });
});
