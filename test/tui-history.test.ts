import { describe, expect, it } from "vitest";
import { emptyHistory, historyOf, observe } from "../tui/history.js";
import { fmtValue, labelOf, reportRows } from "../tui/report-rows.js";
import { report, snap } from "./tui-fixtures.js";

const at = (t: number, bulk: number, faults = 0, guestProgress = 1) =>
  snap({ elapsedMs: t, channelBytes: { urgent: 0, bulk }, demandFaults: faults, guestProgress });

describe("tui history", () => {
  it("derives rates per second of the driver's clock over the window", () => {
    const h = historyOf([at(0, 0), at(500, 1000, 5), at(1000, 3000, 10), at(1500, 6000, 30)]);
    // window 1000 ms back from 1500: the sample at 500
    expect(h.rates).toEqual({ urgent: 0, bulk: 5000, faultsPerSec: 25 });
    expect(h.samples.map((s) => s.t)).toEqual([0, 500, 1000, 1500]);
  });

  it("uses the last step when it is longer than the window (a fast simulator)", () => {
    const h = historyOf([at(0, 0), at(5000, 10_000), at(15_000, 30_000)]);
    expect(h.rates?.bulk).toBe(2000);
    expect(h.samples.map((s) => s.t)).toEqual([5000, 15_000]);
  });

  it("keeps rates while the clock stands still, starts over when it goes back", () => {
    const h = historyOf([at(0, 0), at(1000, 1000)]);
    expect(observe(h, at(1000, 1000))).toBe(h);
    const reset = observe(h, at(10, 0));
    expect(reset.rates).toBeNull();
    expect(reset.progress).toHaveLength(1);
  });

  it("records phases seen and decimates the progress series", () => {
    let h = emptyHistory();
    for (let t = 1; t <= 2000; t++) h = observe(h, { ...at(t, t), phase: t < 1000 ? "precopy" : "postcopy" });
    expect(h.seen).toEqual(["precopy", "postcopy"]);
    expect(h.progress.length).toBeLessThanOrEqual(512);
    expect(h.progress.at(-1)?.t).toBe(2000);
  });
});

describe("tui report rows", () => {
  it("formats values by their key", () => {
    expect(fmtValue("setup_ms", 12.5)).toBe("12.5 ms");
    expect(fmtValue("mem_bytes", 1073741824)).toBe("1.00 GiB");
    expect(fmtValue("background_mib_s", 118.4)).toBe("118.4 MiB/s");
    expect(fmtValue("throttle", 0.5)).toBe("50.0%");
    expect(fmtValue("verified", true)).toBe("yes");
    expect(fmtValue("throttle", 0.8999999999999999)).toBe("90.0%");
    expect(fmtValue("extra", { at_ms: 1500, total_bytes: 2048 })).toBe("at 1.50 s · total 2.00 KiB");
    expect(fmtValue("x", "y".repeat(100))).toHaveLength(60);
  });

  it("lists every key of a report, rounds summarised", () => {
    const r = report({ seed: 42 });
    const rows = reportRows(r);
    const guest = ["guest", "guest stalls", "guest MMU", "guest responsive"];
    const labels = Object.keys(r).flatMap((k) => (k === "precopy" ? [] : k === "rounds" ? ["rounds", "round pages"] : k === "guest" ? guest : [labelOf(k)]));
    expect(rows.map(([k]) => k)).toEqual(labels);
    expect(labels).toContain("blocktime");
    expect(labels).toContain("memory");
    expect(rows).toContainEqual(["guest MMU", "10.0 ms 0% · 100 ms 0% · 1.00 s 87% · 10.00 s 99%"]);
    expect(rows).toContainEqual(["seed", "42"]);
    expect(rows).toContainEqual(["pages_sent", "281,000"]);
  });
});
