/**
 * The fault trace (src/real/fault-trace*.ts, PPSIM_FAULT_TRACE): what each
 * agent writes, and the join of a session's two files into each fault's
 * legs with the loop stalls that overlap them.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DestFaultTrace, monoUs, SourceFaultTrace, type DestFaultStamps, type LoopTrace, type SourceFaultStamps, type TraceFile } from "../src/real/fault-trace.js";
import { joinTraces } from "../src/real/fault-trace-join.js";

const quiet: LoopTrace = { delayUs: { p50: 1000, p99: 1000, max: 1000, count: 1 }, stalls: [], gc: [], long: [], utilisation: 0, threads: [] };

describe("fault trace", () => {
  it("each agent writes its stamps in order, a page's second vCPU sharing the first's way", () => {
    const dir = mkdtempSync(join(tmpdir(), "ft-"));
    try {
      const d = new DestFaultTrace(dir, "s1");
      const s = new SourceFaultTrace(dir, "s1");
      const read = monoUs();
      d.fault(7, read);
      d.fault(7, read + 1); // another vCPU on the same page
      d.requested(7);
      s.request(7);
      s.replied(Uint32Array.of(7));
      d.arrived(Uint32Array.of(7, 8), "urgent");
      d.installed(Uint32Array.of(7, 8));
      const dp = d.finish() as string;
      const sp = s.finish() as string;
      expect(d.finish()).toBeNull();
      const df = JSON.parse(readFileSync(dp, "utf8")) as TraceFile<DestFaultStamps>;
      const sf = JSON.parse(readFileSync(sp, "utf8")) as TraceFile<SourceFaultStamps>;
      expect(df.faults).toHaveLength(1);
      const f = df.faults[0];
      expect(f.page).toBe(7);
      expect(f.channel).toBe("urgent");
      const seq = [f.read, f.js, f.requested, f.arrived, f.installed] as number[];
      expect([...seq].sort((a, b) => a - b)).toEqual(seq);
      expect(sf.faults).toEqual([expect.objectContaining({ page: 7 })]);
      expect(df.loop.delayUs.count).toBeGreaterThanOrEqual(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("joins the two sides into legs and names what overlapped a fault", () => {
    const dest: TraceFile<DestFaultStamps> = {
      role: "destination", session: "s", pid: 1,
      faults: [
        { page: 1, read: 1000, js: 1020, requested: 1050, arrived: 1400, channel: "urgent", installed: 1420 },
        { page: 2, read: 2000, js: 2010, requested: 2030, arrived: 2100, channel: "bulk", installed: 2105 },
        { page: 3, read: 3000, js: 3010, requested: null, arrived: null, channel: null, installed: null },
      ],
      loop: { ...quiet, stalls: [[1100, 250, 200, 50]], gc: [[5000, 100, 1]] },
    };
    const source: TraceFile<SourceFaultStamps> = { role: "source", session: "s", pid: 2, faults: [{ page: 1, arrived: 1200, replied: 1260 }], loop: { ...quiet, long: [[1190, 1500, "TCPWRAP"]] } };
    const j = joinTraces(dest, source);
    expect(j.faults).toHaveLength(2); // the uninstalled one is left out
    expect(j.faults[0].legs).toEqual({ hop: 20, engine: 30, out: 150, source: 60, back: 140, install: 20, total: 420 });
    expect(j.faults[1].legs).toEqual({ hop: 10, engine: 20, install: 5, total: 105 }); // brought by bulk: no source legs
    expect(j.faults[0].overlaps.map((o) => [o[0], o[1].split(" ")[0], o[2], o[3]])).toEqual([
      ["destination", "stall", 100, 250],
      ["source", "TCPWRAP", 190, 1500],
    ]);
    expect(j.faults[1].overlaps).toEqual([["source", "TCPWRAP", -810, 1500]]);
    expect(j.legs.total).toEqual({ count: 2, p50: 105, p99: 420, max: 420 });
  });
});
