import { cleanup, render } from "ink-testing-library";
import { afterEach, describe, expect, it } from "vitest";
import { historyOf } from "../tui/history.js";
import { View } from "../tui/view/View.js";
import type { Snapshot } from "../src/engine/report.js";
import { PAGES, plain, report, snap } from "./tui-fixtures.js";

afterEach(cleanup);

function frame(s: Snapshot, prev: Snapshot[] = [], status = {}): string {
  const { lastFrame } = render(<View snapshot={s} history={historyOf([...prev, s])} status={status} />);
  const text = plain(lastFrame());
  for (const line of text.split("\n")) expect(line.length).toBeLessThanOrEqual(80);
  return text;
}

const MiB = 1048576;

describe("tui view", () => {
  it("shows setup", () => {
    const f = frame(snap({ elapsedMs: 12 }));
    expect(f).toContain("ppsim sim · hybrid · web-server");
    expect(f).toContain("[setup] › pre-copy › switchover › post-copy › complete");
    expect(f).toContain("12.0 ms");
    expect(f).toContain("0.0%");
    expect(f).toContain("0/262,144");
  });

  it("shows pre-copy round 3 with throughput, throttle and legend", () => {
    const a = snap({ phase: "precopy", round: 3, elapsedMs: 2000, channelBytes: { urgent: 0, bulk: 200 * MiB } });
    const b = snap({
      phase: "precopy",
      round: 3,
      elapsedMs: 3000,
      channelBytes: { urgent: MiB, bulk: 300 * MiB },
      present: { precopy: PAGES / 4, background: 0, demand: 0 },
      throttle: 0.3,
      guestProgress: 0.7,
    });
    const f = frame(b, [a]);
    expect(f).toContain("setup › [pre-copy r3] › switchover");
    expect(f).toContain("3.00 s");
    expect(f).toContain("25.0%");
    expect(f).toContain("█ pre-copy 25.0%");
    expect(f).toContain("▓ background 0.0%");
    expect(f).toContain("▒ demand 0.0%");
    expect(f).toMatch(/urgent 1\.00 MiB\/s\s+bulk 100 MiB\/s\s+sent 301 MiB/);
    expect(f).toContain("throttle 30%");
    expect(f).toContain("70.0% speed (200 ms)");
    expect(f).not.toContain("downtime");
  });

  it("shows switchover with the downtime once known", () => {
    const f = frame(snap({ mode: "precopy", phase: "switchover", round: 5, elapsedMs: 9000, downtimeMs: 42.1 }));
    expect(f).toContain("setup › pre-copy r5 › [switchover] › complete");
    expect(f).toContain("downtime 42.1 ms");
  });

  it("shows post-copy faults, rates, percentiles and the histogram", () => {
    const hist = new Array<number>(24).fill(0);
    hist[6] = 10; // 64..128 µs
    hist[7] = 40;
    hist[9] = 20;
    hist[12] = 2; // 4096..8192 µs
    const common = { mode: "postcopy" as const, phase: "postcopy" as const, downtimeMs: 3.2 };
    const a = snap({ ...common, elapsedMs: 1000, demandFaults: 100, channelBytes: { urgent: 0, bulk: 0 } });
    const b = snap({
      ...common,
      elapsedMs: 1500,
      demandFaults: 172,
      present: { precopy: 0, background: PAGES / 2, demand: PAGES / 8 },
      channelBytes: { urgent: 2 * MiB, bulk: 50 * MiB },
      faultLatencyUs: { p50: 180, p99: 2100, max: 8190 },
      faultHistogram: hist,
      guestProgress: 0.4,
      guestSoFar: { utilization: 0.625, workLostVcpuS: 1.5 },
    });
    const f = frame(b, [a]);
    expect(f).toContain("setup › switchover › [post-copy] › complete");
    expect(f).toContain("62.5%");
    expect(f).toContain("▓ background 50.0%");
    expect(f).toContain("▒ demand 12.5%");
    expect(f).toMatch(/urgent 4\.00 MiB\/s\s+bulk 100 MiB\/s/);
    expect(f).toMatch(/faults\s+172 total\s+144\.0\/s\s+p50 180 µs\s+p99 2\.10 ms\s+max 8\.19 ms/);
    expect(f).toContain("▃█ ▅  ▁  64 µs … 8.19 ms");
    expect(f).toContain("40.0% speed (200 ms)");
    expect(f).toMatch(/lost\s+1\.5 vCPU-s · 62\.5% of unmigrated work so far/);
    expect(f).toContain("downtime 3.20 ms");
  });

  it("shows recovering and the notice line", () => {
    const f = frame(snap({ phase: "recovering", elapsedMs: 4000, downtimeMs: 5, notice: "link down: reconnecting" }));
    expect(f).toContain("switchover › [recovering] › complete");
    expect(f).toContain("! link down: reconnecting");
  });

  it("shows a refused cancel and the keys", () => {
    const s = snap({ phase: "postcopy", elapsedMs: 4000, downtimeMs: 5 });
    const f = frame(s, [], { keys: true, canPause: true, notice: "cancel refused: past switchover" });
    expect(f).toContain("! cancel refused: past switchover");
    expect(f).toContain("q quit · p pause");
    const g = frame(s, [], { keys: true, canPause: true, paused: true });
    expect(g).toContain("‖ paused");
    expect(g).toContain("p resume");
  });

  it("shows the full report once complete", () => {
    const s = snap({
      phase: "complete",
      elapsedMs: 14_320,
      round: 3,
      downtimeMs: 42.1,
      present: { precopy: PAGES / 2, background: PAGES / 4, demand: PAGES / 4 },
      report: report({ link: { bandwidth_bytes_s: 125e6, latency_us: 500, shared_channel: false, text: "1 Gbit/s, 0.5 ms" }, seed: 7 }),
    });
    const f = frame(s);
    expect(f).toContain("setup › pre-copy r3 › switchover › post-copy › [complete]");
    expect(f).toContain("100.0%");
    expect(f).toContain("report: completed");
    expect(f).toMatch(/downtime\s+42\.1 ms/);
    expect(f).toMatch(/total\s+14\.32 s/);
    expect(f).toMatch(/rounds\s+3 · 1\.04 GiB · 9\.45 s/);
    expect(f).toMatch(/round pages\s+262,144 › 9,120 › 880/);
    expect(f).toMatch(/fault_latency\s+p50 180 µs · p99 2\.10 ms · max 8\.19 ms/);
    expect(f).toMatch(/guest\s+87\.3% of unmigrated work · lost 0\.127 vCPU-s/);
    expect(f).toMatch(/guest stalls\s+1 · longest 127 ms/);
    expect(f).toMatch(/background\s+118\.4 MiB\/s/);
    expect(f).toMatch(/switchover_reason\s+hybrid-rounds/);
    expect(f).toMatch(/link\s+1 Gbit\/s, 0\.5 ms/);
    expect(f).toMatch(/seed\s+7/);
    expect(f).not.toContain("q quit");
  });

  it("shows a cancelled pre-copy with the stages it never reached dimmed", () => {
    const before = snap({ phase: "precopy", round: 2, elapsedMs: 1000 });
    const s = snap({ phase: "cancelled", round: 2, elapsedMs: 1200, report: report({ outcome: "cancelled" }) });
    const f = frame(s, [before]);
    expect(f).toContain("setup › pre-copy r2 › switchover › post-copy › [cancelled]");
    expect(f).toContain("report: cancelled");
  });
});
