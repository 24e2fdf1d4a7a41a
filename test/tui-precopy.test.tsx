/** Frames of the pre-copy figures and of a real run's views, and the snapshot's figures from a real simulation. */
import { cleanup, render } from "ink-testing-library";
import { afterEach, describe, expect, it } from "vitest";
import type { Snapshot } from "../src/engine/report.js";
import { Simulation } from "../src/sim/simulation.js";
import { parseWorkload } from "../src/workload/parse.js";
import { historyOf } from "../tui/history.js";
import { View } from "../tui/view/View.js";
import { PAGES, plain, report, snap } from "./tui-fixtures.js";

afterEach(cleanup);

function frame(s: Snapshot, prev: Snapshot[] = []): string {
  const { lastFrame } = render(<View snapshot={s} history={historyOf([...prev, s])} />);
  const text = plain(lastFrame());
  for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
  return text;
}

const MiB = 1048576;
const precopy = (over: Partial<NonNullable<Snapshot["precopy"]>> = {}) => ({
  remainingPages: 9120,
  remainingBytes: 9120 * 4096,
  dirtyRateBytesPerSec: 12 * MiB,
  bandwidthBytesPerSec: 118 * MiB,
  expectedDowntimeMs: 302,
  downtimeLimitMs: 300,
  downtimeTargetMs: 270,
  ...over,
});

describe("pre-copy view", () => {
  it("shows round, remaining pages, dirty rate against bandwidth, expected downtime against the limit, throttle", () => {
    const s = snap({
      mode: "precopy",
      phase: "precopy",
      round: 4,
      elapsedMs: 9000,
      present: { precopy: PAGES, background: 0, demand: 0 },
      throttle: 0.3,
      precopy: precopy(),
    });
    const f = frame(s);
    expect(f).toMatch(/round\s+r4\s+remaining 9,120 pages \(35\.6 MiB\)/);
    expect(f).toMatch(/dirty\s+12\.0 MiB\/s vs bandwidth 118 MiB\/s\s+throttle 30%/);
    expect(f).toMatch(/expect\s+302 ms downtime · limit 300 ms \(switch at ≤ 270 ms\)\s+\(too long yet\)/);
    // The pages dirtied since they were sent are not counted as done.
    expect(f).toContain("█ pre-copy 96.5%  ▚ dirty 3.5%");
    expect(f).not.toContain("faults");
  });

  it("says when the dirty set fits the limit, and shows no figures before the first round ends", () => {
    const fits = frame(snap({ mode: "precopy", phase: "precopy", round: 9, precopy: precopy({ expectedDowntimeMs: 31.4 }) }));
    expect(fits).toMatch(/31\.4 ms downtime · limit 300 ms \(switch at ≤ 270 ms\)\s+\(fits\)/);
    // Inside the limit but not its margin: the engine goes on, and the view says so.
    const margin = frame(snap({ mode: "precopy", phase: "precopy", round: 9, precopy: precopy({ expectedDowntimeMs: 285 }) }));
    expect(margin).toMatch(/285 ms downtime · limit 300 ms \(switch at ≤ 270 ms\)\s+\(too long yet\)/);
    const noMargin = frame(snap({ mode: "precopy", phase: "precopy", round: 9, precopy: precopy({ expectedDowntimeMs: 285, downtimeTargetMs: 300 }) }));
    expect(noMargin).toMatch(/285 ms downtime · limit 300 ms\s+\(fits\)/);
    const first = frame(
      snap({
        mode: "precopy",
        phase: "precopy",
        round: 1,
        present: { precopy: PAGES / 4, background: 0, demand: 0 },
        precopy: precopy({ remainingPages: (3 * PAGES) / 4, dirtyRateBytesPerSec: null, bandwidthBytesPerSec: null, expectedDowntimeMs: null, downtimeLimitMs: null, downtimeTargetMs: null }),
      }),
    );
    expect(first).toMatch(/round\s+r1\s+remaining 196,608 pages/);
    expect(first).toMatch(/dirty\s+– vs bandwidth –/);
    expect(first).toContain("[pre-copy r1]");
  });

  it("comes from the simulator: the round counts from 1, remaining pages fall within a round", () => {
    const workload = parseWorkload({
      ppsim_workload: 1,
      name: "busy",
      memory: "64MiB",
      page_size: 4096,
      vcpus: 2,
      phases: [{ steps: 1000, compute_ns: 2000, write_share: 0.5, pattern: { kind: "uniform" } }],
    });
    const sim = new Simulation({ workload, options: { mode: "precopy" }, link: { bandwidthBytesPerSec: 125e6, latencyUs: 100 } });
    sim.advanceTo(100);
    const a = sim.snapshot();
    expect(a.phase).toBe("precopy");
    expect(a.round).toBe(1);
    expect(a.precopy?.remainingPages).toBeLessThan(a.pageCount);
    expect(a.precopy?.remainingPages).toBeGreaterThan(0);
    expect(a.precopy?.dirtyRateBytesPerSec).toBeNull();
    let s = a;
    while (!sim.done && s.round < 3) {
      sim.advanceTo(sim.nowMs + 20);
      s = sim.snapshot();
    }
    if (s.phase === "precopy") {
      expect(s.precopy?.dirtyRateBytesPerSec).toBeGreaterThan(0);
      expect(s.precopy?.bandwidthBytesPerSec).toBeGreaterThan(0);
      expect(s.precopy?.downtimeLimitMs).toBe(300);
    }
    const r = sim.runToEnd();
    expect(r.precopy).not.toBeNull();
    expect(r.precopy?.downtime_limit_ms).toBe(300);
    expect(r.precopy?.bandwidth_bytes_s).toBeGreaterThan(100e6);
    expect(r.precopy?.bandwidth_bytes_s).toBeLessThanOrEqual(125e6);
  });
});

describe("real views", () => {
  it("shows what the source sent until the destination reports", () => {
    const s = snap({
      backend: "real",
      mode: "precopy",
      phase: "precopy",
      round: 2,
      presentFrom: "source",
      present: { precopy: PAGES / 2, background: 0, demand: 0 },
      channelBytes: { urgent: 0, bulk: 94 * MiB },
      precopy: precopy({ remainingPages: PAGES / 4 }),
    });
    const f = frame(s);
    expect(f).toContain("ppsim real · precopy · web-server");
    expect(f).toContain("wall clock");
    expect(f).toMatch(/sent\s+█+▚+░+\s+50\.0%/);
    expect(f).toMatch(/round\s+r2/);
  });

  it("shows a hybrid's post-copy from the destination's counters, and its report", () => {
    const live = frame(
      snap({ backend: "real", phase: "postcopy", round: 2, downtimeMs: 4.2, presentFrom: "destination", present: { precopy: PAGES / 2, background: PAGES / 4, demand: 1000 } }),
    );
    expect(live).toMatch(/present\s+█+▓+▒*░+\s+75\.4%/);
    expect(live).not.toContain("remaining");
    const done = frame(
      snap({
        backend: "real",
        phase: "complete",
        round: 2,
        downtimeMs: 4.2,
        present: { precopy: PAGES / 2, background: PAGES / 2 - 1000, demand: 1000 },
        report: report({ backend: "real", guest_finished_early: false, hash: { destination: "ab12", unmigrated: "ab12" }, peer: "127.0.0.1:7070" }),
      }),
    );
    expect(done).toContain("[complete]");
    expect(done).toContain("100.0%");
    expect(done).toMatch(/guest_finished_early no/);
    expect(done).toMatch(/hash\s+ab12 \(= unmigrated\)/);
  });
});
