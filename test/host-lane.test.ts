/**
 * The fault lane's share of the link (src/sim/host-lane.ts): with
 * `loop_hop_us` a lane fault's request and reply skip the event loops'
 * share of the link's latency (never more than the latency), and pay the
 * stream's contention (`urgent_extra_us`) with the CPU keys; without the
 * key a lane fault costs what it cost before, and an older profile is
 * still taken. With a lane the source's lane thread answers every request,
 * also for a page already on its way in a background message (engine-effects.ts
 * laneServe), as the real one does.
 */
import { describe, expect, it } from "vitest";
import { checkHostProfile, DEFAULT_HOST, messageCostUs, type HostProfile } from "../src/sim/host.js";
import { laneExtraUs } from "../src/sim/host-lane.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";
import { FREE } from "./support/free-host.js";

const request = { type: "pageRequest" as const, page: 3 };
const reply = { type: "pages" as const, pages: Uint32Array.of(3), data: [null] };

describe("the fault lane's share of the link", () => {
  it("without loop_hop_us: the request carries the lane's figure, the reply nothing (as before)", () => {
    expect(laneExtraUs({}, 49, "pageRequest", 90)).toBe(49);
    expect(laneExtraUs({}, 49, "pages", 90)).toBe(0);
    const lane = { ...FREE, fault_lane_us: 49 };
    expect(messageCostUs(lane, request, true, true, 90)).toEqual({ sendUs: 0, recvUs: 0, extraUs: 49 });
    expect(messageCostUs(lane, reply, true, true, 90)).toEqual({ sendUs: 0, recvUs: 0, extraUs: 0 });
  });

  it("with loop_hop_us: both take the hop off the link's latency, never more than it; the CPU keys add urgent_extra_us", () => {
    expect(laneExtraUs({ loop_hop_us: 80 }, 49, "pageRequest", 90)).toBe(49 - 80);
    expect(laneExtraUs({ loop_hop_us: 80 }, 49, "pages", 90)).toBe(-80);
    // A hop larger than the link's latency takes off the latency only: nothing arrives before its last byte left.
    expect(laneExtraUs({ loop_hop_us: 500 }, 49, "pages", 90)).toBe(-90);
    expect(laneExtraUs({ loop_hop_us: 500 }, 49, "pageRequest", 90)).toBe(49 - 90);
    expect(laneExtraUs({ loop_hop_us: 80, cores_available: 1, urgent_extra_us: 25 }, 49, "pageRequest", 90)).toBe(49 + 25 - 80);
    expect(laneExtraUs({ loop_hop_us: 80, urgent_extra_us: 25 }, 49, "pageRequest", 90)).toBe(49 - 80);
    // Only the lane's messages: a request off the lane (no fault_lane_us) or on the bulk channel keeps its costs.
    const hop = { ...FREE, loop_hop_us: 80 };
    expect(messageCostUs(hop, request, true, true, 90).extraUs).toBe(0);
    expect(messageCostUs({ ...hop, fault_lane_us: 49 }, request, true, false, 90).extraUs).toBe(0);
    expect(messageCostUs({ ...hop, fault_lane_us: 49 }, request, true, true, 90).extraUs).toBe(49 - 80);
  });

  it("a profile with loop_hop_us is taken, a wrong one refused, one without it (older) still taken", () => {
    expect(checkHostProfile({ ...DEFAULT_HOST, loop_hop_us: 89.5 }, "p.json").loop_hop_us).toBe(89.5);
    expect(checkHostProfile(JSON.parse(JSON.stringify(DEFAULT_HOST)), "old.json").loop_hop_us).toBeUndefined();
    expect(() => checkHostProfile({ ...DEFAULT_HOST, loop_hop_us: -1 }, "p.json")).toThrow(/loop_hop_us/);
    expect(() => checkHostProfile({ ...DEFAULT_HOST, loop_hop_us: "90" }, "p.json")).toThrow(/loop_hop_us/);
    expect(DEFAULT_HOST.loop_hop_us).toBeUndefined();
  });

  it("in a run: a lane fault's reply comes the lane's figure + the wire after the request, the link's round trip skipped", () => {
    const web = withMemory(loadWorkload("examples/web-server.json"), 64 * 1024 * 1024);
    const link = { bandwidthBytesPerSec: 10e9, latencyUs: 100 };
    const lane: HostProfile = { ...FREE, fault_lane_us: 300 };
    const before = simulate({ workload: web, options: { mode: "postcopy" }, link, host: lane });
    const after = simulate({ workload: web, options: { mode: "postcopy" }, link, host: { ...lane, loop_hop_us: 100 } });
    expect(after.verified).toBe(true);
    expect(after.demand_faults).toBeGreaterThan(0);
    // Before: 2 × 100 µs of latency + 300 + the wire (~4 µs at 10 GB/s); after: 300 + the wire.
    expect(before.fault_latency_us.p50).toBeGreaterThan(300 + 2 * 100);
    expect(after.fault_latency_us.p50).toBeGreaterThanOrEqual(300);
    expect(after.fault_latency_us.p50).toBeLessThanOrEqual(300 + 10);
    // Other messages still pay the link's latency: the switchover's downtime is no shorter than its one way.
    expect(after.downtime_ms * 1000).toBeGreaterThanOrEqual(100);
  });

  it("the lane answers a request whose page is already on its way in a background message; without it the request waits for that copy", () => {
    // A sequential scan faults at the background stream's front, on pages in messages still on the wire:
    // 256-page messages (~1 MiB) take ~1 ms each at 1 GB/s, a lane reply 2 × 20 µs + 10 + its 4 KiB.
    const scan = withMemory(loadWorkload("examples/memory-scan.json"), 32 * 1024 * 1024);
    const link = { bandwidthBytesPerSec: 1e9, latencyUs: 20 };
    const options = { mode: "postcopy", batchPages: 256 } as const;
    const lane = simulate({ workload: scan, options, link, host: { ...FREE, fault_lane_us: 10 } });
    // The same costs without a lane: the engine leaves a request to the copy already sent.
    const engine = simulate({ workload: scan, options, link, host: { ...FREE, fault_delivery_us: 10 } });
    for (const r of [lane, engine]) {
      expect(r.verified).toBe(true);
      expect(r.demand_faults).toBeGreaterThan(50);
    }
    // Every lane fault a round trip; the engine's slowest wait for a background message still on the wire.
    expect(lane.fault_latency_us.max).toBeLessThan(2 * 20 + 10 + 20);
    expect(engine.fault_latency_us.p99).toBeGreaterThan(500);
    // Not blocked for a message's time, the vCPUs run on to fault on more pages (the real memory-scan's count).
    expect(lane.demand_faults).toBeGreaterThan(engine.demand_faults);
  });
});
