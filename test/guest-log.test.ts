/**
 * The native guest's per-vCPU progress log (PROGRESS_LOG) and how the agents
 * join two guests' logs into one trace. The native part needs the built
 * ppsim-guest; nothing here depends on how fast the machine is (a pause of
 * at least 60 ms must show as a stall of at least 50 ms).
 */
import { describe, expect, it } from "vitest";
import { deriveDisruption } from "../src/disruption/derive.js";
import { checkGuestLog, logToSend, SENT_LOG_SLOTS, traceFromLogs, type GuestLog } from "../src/disruption/guest-log.js";
import { GuestProcess } from "../src/real/guest-process.js";
import { constants } from "../src/real/native.js";

const PS = constants().PAGE_SIZE;
const STEPS = 20_000;
const CONFIG = [`mem_bytes ${256 * PS}`, `page_size ${PS}`, "vcpus 2", "seed 1", "zero_share 0.3",
  "phase steps=1000 compute_ns=2000 write_share=0.5 pattern=uniform region_offset=0 region_size=1 stride=1 hot_share=0.1 hot_access=0.9 exponent=1.1"].join("\n") + "\n";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFinished(g: GuestProcess): Promise<void> {
  while (!(await g.progress()).vcpus.every((v) => v.finished)) await sleep(5);
}

describe("joining guest logs", () => {
  const full = (n: number, per: number) => new Array<number>(n).fill(per);
  it("a source log up to the pause and a destination log from the resume give one trace with the gap as a stall", () => {
    // 1 step per µs; slots of 100 µs. Source runs 0..500 ms, destination from 600 ms to 1 s.
    const src: GuestLog = { originUs: -1000_000, vcpus: [{ slotUs: 100, steps: full(15_000, 100) }] };
    const dst: GuestLog = { originUs: 600_000, vcpus: [{ slotUs: 100, steps: full(4000, 100) }] };
    const t = traceFromLogs([src, dst], 0, 1_000_000, 1);
    const d = deriveDisruption(t);
    expect(d.longest_stall_ms).toBeCloseTo(100, 0);
    expect(d.work_lost_vcpu_s).toBeCloseTo(0.1, 3);
  });

  it("what a destination sends is bounded and keeps the total", () => {
    const log: GuestLog = { originUs: 0, vcpus: [{ slotUs: 100, steps: full(40_000, 3) }] };
    const sent = logToSend(log, 0);
    expect(sent.vcpus[0].steps.length).toBeLessThanOrEqual(SENT_LOG_SLOTS);
    expect(sent.vcpus[0].slotUs).toBe(400);
    expect(sent.vcpus[0].steps.reduce((a, b) => a + b, 0)).toBe(120_000);
    // Cut to [1 ms, 2 ms): 10 slots kept, those before 1 ms zeroed.
    const cut = logToSend(log, 1000, 2000);
    expect(cut.vcpus[0].steps).toEqual([...full(10, 0), ...full(10, 3)]);
  });

  it("a peer's log is refused unless its shape and numbers are sane", () => {
    const ok = { originUs: 5, vcpus: [{ slotUs: 100, steps: [1, 2] }] };
    expect(checkGuestLog(ok, 1)).toEqual(ok);
    expect(checkGuestLog(ok, 2)).toBeNull();
    expect(checkGuestLog({ ...ok, vcpus: [{ slotUs: 0, steps: [] }] }, 1)).toBeNull();
    expect(checkGuestLog({ ...ok, vcpus: [{ slotUs: 100, steps: [-1] }] }, 1)).toBeNull();
    expect(checkGuestLog({ ...ok, vcpus: [{ slotUs: 100, steps: new Array(40_000).fill(0) }] }, 1)).toBeNull();
    expect(checkGuestLog("x", 1)).toBeNull();
    expect(checkGuestLog(null, 1)).toBeNull();
  });
});

describe("ppsim-guest PROGRESS_LOG", () => {
  it("counts every step of every vCPU, refuses while they run, and shows a pause as a stall", async () => {
    const g = await GuestProcess.spawn({ role: "source", config: CONFIG, steps: STEPS });
    try {
      await g.run();
      await expect(g.progressLog()).rejects.toThrow(/needs the vCPUs paused or finished/);
      // The pause must fall between steps: on a loaded host RUN may answer before a vCPU's first
      // step, and a pause before it would precede the log's origin, where no stall can show.
      while ((await g.progress()).vcpus.some((v) => v.steps === 0)) await sleep(2);
      await g.pause();
      await sleep(60);
      await g.resume();
      await waitFinished(g);
      const log = await g.progressLog();
      expect(log.vcpus).toHaveLength(2);
      for (const v of log.vcpus) {
        expect(v.steps.reduce((a, b) => a + b, 0)).toBe(STEPS);
        expect(v.slotUs).toBeGreaterThanOrEqual(100);
      }
      const total = log.vcpus[0].steps.length * log.vcpus[0].slotUs;
      const perUs = STEPS / total;
      const d = deriveDisruption(traceFromLogs([log], log.originUs, log.originUs + total, perUs));
      expect(d.longest_stall_ms).toBeGreaterThanOrEqual(50);
    } finally {
      await g.quit();
    }
  });
});
