/**
 * The simulator's destination with memory populated ahead (src/sim/host-populated.ts):
 * the profile's populated stream keys checked like the others, swapped in for
 * the stream keys (the run keys, measured on fresh memory's installs, dropped)
 * only when the run says the destination is populated, and a post-copy then
 * costs what those figures say.
 */
import { describe, expect, it } from "vitest";
import { checkHostProfile, DEFAULT_HOST, type HostProfile } from "../src/sim/host.js";
import { populatedHost, POPULATED_KEYS } from "../src/sim/host-populated.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";

const STREAM: HostProfile = {
  ...DEFAULT_HOST,
  cores_available: 1.9,
  stream_ns_per_page: 2700,
  stream_ns_per_zero_page: 60,
  stream_ns_per_page_running: 3100,
  stream_ns_per_zero_page_running: 60,
};
const POPULATED: HostProfile = {
  ...STREAM,
  install_ns_per_page_populated: 900,
  install_ns_per_zero_page_populated: 200,
  stream_ns_per_page_populated: 1300,
  stream_ns_per_zero_page_populated: 50,
  stream_ns_per_page_running_populated: 1400,
  stream_ns_per_zero_page_running_populated: 55,
};

describe("a destination populated ahead, simulated", () => {
  it("the profile takes the populated keys, each a cost", () => {
    expect(checkHostProfile(JSON.parse(JSON.stringify(POPULATED)), "p").stream_ns_per_page_running_populated).toBe(1400);
    expect(checkHostProfile(JSON.parse(JSON.stringify(POPULATED)), "p").install_ns_per_page_populated).toBe(900);
    for (const k of POPULATED_KEYS) expect(() => checkHostProfile({ ...POPULATED, [k]: -1 }, "p")).toThrow(new RegExp(`"${k}" must be a number`));
    expect(() => checkHostProfile({ ...POPULATED, stream_ns_per_page_populated: "1" }, "p")).toThrow(/must be a number/);
  });

  it("its stream keys are the populated ones, without the run keys; a profile without them stays as it is", () => {
    const p = populatedHost(POPULATED);
    expect([p.stream_ns_per_page, p.stream_ns_per_zero_page, p.stream_ns_per_page_running, p.stream_ns_per_zero_page_running]).toEqual([1300, 50, 1400, 55]);
    expect([p.install_ns_per_page, p.install_ns_per_zero_page]).toEqual([900, 200]);
    expect(p.stream_ns_per_zero_run_running).toBeUndefined();
    expect(POPULATED.stream_ns_per_zero_run_running).toBe(DEFAULT_HOST.stream_ns_per_zero_run_running); // the profile given is not changed
    const { install_ns_per_page_populated: _i, install_ns_per_zero_page_populated: _z, ...bare } = STREAM;
    expect(populatedHost(bare)).toBe(bare);
    // The shipped profile models no stream (no CPU keys): populated, only its installs change.
    const shipped = populatedHost(DEFAULT_HOST);
    expect(shipped.stream_ns_per_page).toBeUndefined();
    expect(shipped.install_ns_per_page).toBe(DEFAULT_HOST.install_ns_per_page_populated);
  });

  // A link the stream, not the wire, bounds (this machine's loopback carries ~2.5 GB/s).
  it("a post-copy into populated memory streams at its figures: shorter, verified, the same each time; unpopulated runs ignore them", () => {
    const workload = withMemory(loadWorkload("examples/web-server.json"), 32 * 1024 * 1024);
    const cfg = { workload, options: { mode: "postcopy" as const }, link: { bandwidthBytesPerSec: 2.5e9, latencyUs: 20 }, seed: 3 };
    const fresh = simulate({ ...cfg, host: POPULATED });
    const populated = simulate({ ...cfg, host: POPULATED, destPopulated: true });
    expect(populated.verified).toBe(true);
    expect(populated.total_ms).toBeLessThan(fresh.total_ms);
    expect(simulate({ ...cfg, host: POPULATED, destPopulated: true })).toEqual(populated);
    expect(simulate({ ...cfg, host: STREAM }).total_ms).toBe(fresh.total_ms);
  });
});
