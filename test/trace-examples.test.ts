/**
 * The shipped traces (examples/traces/): each is a valid trace well under
 * 1 MB, its workload loads, and a simulated post-copy migration of it
 * (shrunk to 16 MiB) verifies.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { loadTrace, summarizeTrace } from "../src/workload/trace-format.js";
import { withMemory } from "../src/workload/types.js";

const dir = join(import.meta.dirname, "..", "examples", "traces");
const workloads = readdirSync(dir).filter((f) => f.endsWith(".json")).sort();

describe("shipped traces", () => {
  it("are three, one per workload file", () => {
    expect(workloads).toEqual(["gzip-stream.json", "python-alloc.json", "sqlite-bank.json"]);
  });

  it.each(workloads)("%s: its trace is small and valid, and its migration verifies", (file) => {
    const w = loadWorkload(join(dir, file));
    const t = w.phases[0].trace?.traces[0];
    expect(t).toBeDefined();
    expect(statSync(t!.path).size).toBeLessThan(256 * 1024);
    const s = summarizeTrace(loadTrace(t!.path));
    expect(s.written_pages).toBeGreaterThan(0);
    expect(s.footprint_pages).toBeGreaterThan(s.written_pages);
    const r = simulate({ workload: { ...withMemory(w, 16 << 20), warmupMs: 50 }, options: { mode: "postcopy" }, link: { bandwidthBytesPerSec: 125e6, latencyUs: 100 }, seed: 1 });
    expect(r.outcome).toBe("completed");
    expect(r.verified).toBe(true);
    expect(r.demand_faults).toBeGreaterThan(0);
  });
});
