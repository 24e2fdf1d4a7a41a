import { describe, expect, it } from "vitest";
import { ProgressWindow, workSoFar } from "../src/real/progress.js";

describe("the real live view's work so far", () => {
  it("counts a stall as lost work once the guest reports again, in vCPU-seconds", () => {
    // 4 vCPUs at 1 step/µs each: an unmigrated guest does 4 steps per µs.
    const w = new ProgressWindow(4);
    w.add(1_000_000, 100);
    expect(workSoFar(w.latest, 1_000_000, 100, 4, 4)).toBeUndefined(); // no time has passed
    w.add(2_000_000, 100 + 4_000_000); // a full-speed second
    expect(workSoFar(w.latest, 1_000_000, 100, 4, 4)).toEqual({ utilization: 1, workLostVcpuS: 0 });
    w.add(3_000_000, 100 + 4_000_000); // paused for a second: 4 vCPU-seconds lost of 8
    expect(workSoFar(w.latest, 1_000_000, 100, 4, 4)).toEqual({ utilization: 0.5, workLostVcpuS: 4 });
  });
  it("says nothing without a measured rate or a sample", () => {
    expect(workSoFar(null, 0, 0, 4, 4)).toBeUndefined();
    expect(workSoFar({ at: 10, steps: 5 }, 0, 0, 0, 4)).toBeUndefined();
  });
});
