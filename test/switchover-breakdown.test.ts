/**
 * The switchover's downtime breakdown (issue 9, source-report.ts): the
 * agents' legs and the downtime the guest has, from hand-made stamps; a
 * peer's stamps checked; and ppsim-guest's own stamps (PROGRESS_LOG's
 * trailer) in the order a pause and a resume make them. Nothing here
 * depends on timing: the guest test checks only the stamps' order.
 */
import { describe, expect, it } from "vitest";
import { breakdownOf, checkStamps, type SwitchoverTimes } from "../src/real/source-report.js";
import { GuestProcess } from "../src/real/guest-process.js";
import { sleep } from "../src/real/clock.js";
import { constants } from "../src/real/native.js";

// µs on one clock: the engine decides at 1000, the source's two vCPUs park at 1300 and 1450, and so on.
const times: SwitchoverTimes = {
  askedAt: 1000,
  pausedAt: 1600,
  engineUs: 100,
  sentAt: 1750,
  frameAt: 2100,
  arrivedAt: 2250,
  resumedAt: 4000,
  destOriginUs: 2700,
  source: { pauseReadUs: 1200, resumeReadUs: null, firstStepUs: [10, 12], lastParkUs: [1300, 1450] },
  dest: { pauseReadUs: null, resumeReadUs: 2600, firstStepUs: [2900, 2800], lastParkUs: [null, null] },
};

describe("switchover breakdown", () => {
  it("splits the agents' span into legs and gives the guest's downtime from both guests' stamps", () => {
    const b = breakdownOf(times);
    expect(b).toMatchObject({ pause_ms: 0.6, engine_ms: 0.1, to_link_ms: 0.05, delivery_ms: 0.5, resume_ms: 1.75, agents_ms: 3, vcpus_started_ms: 0.45 });
    // The latest park at the source (1450) → the earliest first step at the destination (2800).
    expect(b.guest_ms).toBe(1.35);
    // vCPU 0: 1300 → 2900; vCPU 1: 1450 → 2800.
    expect(b.vcpu_worst_ms).toBe(1.6);
    expect(b.after_first_step_ms).toBe(1.2);
    // The guest's span lies inside the agents' and nothing is lost: before it, in it, after it.
    expect(b.guest_ms!).toBeLessThanOrEqual(b.agents_ms!);
    expect((1450 - 1000) / 1000 + b.guest_ms! + b.after_first_step_ms!).toBeCloseTo(b.agents_ms!, 9);
    expect(b.trace_us).toEqual({
      asked: -450,
      source_pause_read: -250,
      source_last_park: 0,
      paused: 150,
      engine_done: 250,
      sent: 300,
      frame_at_destination: 650,
      arrived: 800,
      dest_resume_read: 1150,
      dest_vcpus_started: 1250,
      dest_first_step: 1350,
      resumed: 2550,
    });
  });

  it("without the guests' stamps keeps the agents' legs only, the trace from the decision", () => {
    const b = breakdownOf({ ...times, source: null, dest: null, destOriginUs: null, frameAt: null });
    expect(b.guest_ms).toBeUndefined();
    expect(b.vcpu_worst_ms).toBeUndefined();
    expect(b.vcpus_started_ms).toBeUndefined();
    expect(b.agents_ms).toBe(3);
    expect(b.trace_us).toEqual({ asked: 0, paused: 600, engine_done: 700, sent: 750, arrived: 1250, resumed: 3000 });
  });

  it("a peer's stamps are refused unless one finite number (or null) per vCPU", () => {
    const ok = { pauseReadUs: null, resumeReadUs: 5, firstStepUs: [1, null], lastParkUs: [null, null] };
    expect(checkStamps(ok, 2)).toEqual(ok);
    expect(checkStamps(ok, 3)).toBeNull();
    expect(checkStamps({ ...ok, firstStepUs: [1, Infinity] }, 2)).toBeNull();
    expect(checkStamps({ ...ok, resumeReadUs: "5" }, 2)).toBeNull();
    expect(checkStamps({ ...ok, lastParkUs: new Array(2e6).fill(0) }, 2)).toBeNull();
    expect(checkStamps(null, 2)).toBeNull();
    expect(checkStamps("x", 2)).toBeNull();
  });
});

const PS = constants().PAGE_SIZE;
const CONFIG = [`mem_bytes ${256 * PS}`, `page_size ${PS}`, "vcpus 2", "seed 1", "zero_share 0.3",
  "phase steps=1000 compute_ns=2000 write_share=0.5 pattern=uniform region_offset=0 region_size=1 stride=1 hot_share=0.1 hot_access=0.9 exponent=1.1"].join("\n") + "\n";
const STEPS = 10_000_000;

describe("ppsim-guest's switchover stamps", () => {
  it("orders a run's first steps, the PAUSE read, each vCPU's park and a fresh guest's RESUME", async () => {
    // Both in the source role (all of RAM present): the second one is started by RESUME with the first one's state, as a destination is.
    const src = await GuestProcess.spawn({ role: "source", config: CONFIG, steps: STEPS, noWp: true });
    const dst = await GuestProcess.spawn({ role: "source", config: CONFIG, steps: STEPS, noWp: true });
    try {
      await src.run();
      while ((await src.progress()).vcpus.some((v) => v.steps === 0)) await sleep(2);
      const state = await src.pause();
      const s = (await src.progressLog()).stamps;
      expect(s).toBeDefined();
      if (s === undefined) return;
      expect(s.resumeReadUs).toBeNull();
      for (let v = 0; v < 2; v++) {
        const first = s.firstStepUs[v];
        const park = s.lastParkUs[v];
        expect(first).not.toBeNull();
        expect(park).not.toBeNull();
        expect(s.pauseReadUs).not.toBeNull();
        expect(first!).toBeLessThanOrEqual(s.pauseReadUs!);
        expect(s.pauseReadUs!).toBeLessThanOrEqual(park!);
      }
      // A fresh guest started by RESUME with the source's state: its first steps come after it read the RESUME.
      const atPause = (await src.progress()).vcpus.map((v) => v.steps);
      await dst.resume(state);
      // Its step counters start from the source's: wait for a step of its own on each vCPU.
      while ((await dst.progress()).vcpus.some((v, i) => v.steps <= atPause[i])) await sleep(2);
      await dst.pause();
      const d = (await dst.progressLog()).stamps;
      expect(d).toBeDefined();
      if (d === undefined) return;
      for (const first of d.firstStepUs) {
        expect(first).not.toBeNull();
        expect(d.resumeReadUs!).toBeLessThanOrEqual(first!);
      }
    } finally {
      await Promise.all([src.quit(), dst.quit()]);
    }
  });
});
