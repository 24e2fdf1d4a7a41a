/**
 * The per-thread CPU account's reading of /proc (src/real/thread-cpu.ts) on
 * hand-made lines, its marks on this very process, the check of a peer's
 * account and the sums between marks (src/real/thread-cpu-summary.ts).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { CpuAccount } from "../src/engine/report.js";
import { parseSchedstat, parseTaskStat, threadRole, ThreadCpuAccount, USER_HZ } from "../src/real/thread-cpu.js";
import { checkCpuAccount, cpuBetween, spanMs } from "../src/real/thread-cpu-summary.js";

/** A stat line as the kernel writes it (proc(5)): utime and stime are fields 14 and 15. */
function statLine(tid: number, comm: string, utime: number, stime: number): string {
  const after = ["S", "1", "2", "3", "0", "-1", "4194560", "10", "0", "0", "0", String(utime), String(stime), "0", "0", "20", "0", "12", "0", "345"];
  return `${tid} (${comm}) ${after.join(" ")}\n`;
}

describe("parseTaskStat", () => {
  it("reads tid, name, state, utime and stime of a plain line", () => {
    const s = parseTaskStat(statLine(4242, "node", 17, 5));
    expect(s).toEqual({ tid: 4242, comm: "node", state: "S", utimeTicks: 17, stimeTicks: 5 });
  });

  it("takes a name with spaces and parentheses whole (it ends at the last ')')", () => {
    for (const comm of ["V8 DefaultWorke", "a) (b", ")", "(", "x) 1 2 3 (y", "((()))", " spaced "]) {
      const s = parseTaskStat(statLine(7, comm, 123, 456));
      expect(s.comm).toBe(comm);
      expect(s.utimeTicks).toBe(123);
      expect(s.stimeTicks).toBe(456);
    }
  });

  it("any 15-byte name and any counts come back as written", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 2 ** 22 }), fc.string({ maxLength: 15 }).filter((c) => !c.includes("\0") && !c.includes("\n")), fc.nat(), fc.nat(), (tid, comm, u, s) => {
        expect(parseTaskStat(statLine(tid, comm, u, s))).toEqual({ tid, comm, state: "S", utimeTicks: u, stimeTicks: s });
      }),
    );
  });

  it("refuses what is not a stat line", () => {
    for (const bad of ["", "node", "12 node S 1", "x (node) S 1 2 3 4 5 6 7 8 9 10 11 12", "12 (node) S 1 2", "12 (node) S 1 2 3 4 5 6 7 8 9 10 -1 12", "0 (node) S 1 2 3 4 5 6 7 8 9 10 11 12"]) {
      expect(() => parseTaskStat(bad), bad).toThrow(/stat line/);
    }
  });
});

describe("parseSchedstat", () => {
  it("reads ns on a CPU and ns waiting for one", () => {
    expect(parseSchedstat("397234 4369304 2\n")).toEqual({ runNs: 397234, waitNs: 4369304 });
  });
  it("is null for anything else", () => {
    for (const bad of ["", "1 2", "1 2 3 4", "a b c", "-1 2 3"]) expect(parseSchedstat(bad), bad).toBeNull();
  });
});

describe("threadRole", () => {
  it("names each part of a migration", () => {
    expect(threadRole(false, true, "node")).toBe("loop");
    expect(threadRole(false, false, "ppsim-bulk-tx")).toBe("bulk");
    expect(threadRole(false, false, "ppsim-bulk-rx")).toBe("bulk");
    expect(threadRole(false, false, "ppsim-lane")).toBe("lane");
    expect(threadRole(false, false, "ppsim-lane-srv")).toBe("lane");
    expect(threadRole(false, false, "ppsim-faults")).toBe("fault reader");
    expect(threadRole(false, false, "ppsim-punch")).toBe("puncher");
    expect(threadRole(false, false, "node")).toBe("node helpers");
    expect(threadRole(true, true, "ppsim-guest")).toBe("guest control");
    expect(threadRole(true, false, "ppsim-vcpu3")).toBe("vcpu");
  });
});

describe("ThreadCpuAccount on this process", () => {
  it("finds the main thread as the loop, and figures that never go down across marks", () => {
    const a = new ThreadCpuAccount([{ process: "source agent", pid: process.pid, guest: false }]);
    a.mark("start");
    let x = 0;
    for (let i = 0; i < 2e6; i++) x += Math.sqrt(i);
    expect(x).toBeGreaterThan(0);
    a.mark("end");
    a.mark("end"); // taken once
    const r = a.result();
    expect(r.marks).toEqual(["start", "end"]);
    expect(r.at_us[1]).toBeGreaterThanOrEqual(r.at_us[0]);
    const loop = r.threads.find((t) => t.tid === process.pid);
    expect(loop?.role).toBe("loop");
    for (const t of r.threads) {
      expect(t.cpu_ms).toHaveLength(2);
      if (t.cpu_ms[0] !== null && t.cpu_ms[1] !== null) expect(t.cpu_ms[1]).toBeGreaterThanOrEqual(t.cpu_ms[0]);
    }
    // The loop ran between the marks; at least one tick of it once it ran a tick's worth.
    const between = cpuBetween(r, "start", "end");
    expect(between?.find((g) => g.role === "loop")?.cpu_ms ?? -1).toBeGreaterThan(0);
    expect(USER_HZ).toBe(100);
  });

  it("a process that is not there gives no threads, not an error", () => {
    const a = new ThreadCpuAccount([{ process: "gone", pid: 2 ** 30, guest: true }]);
    a.mark("start");
    expect(a.result().threads).toEqual([]);
  });
});

const account = (): CpuAccount => ({
  marks: ["start", "resumed", "end"],
  at_us: [1000, 51_000, 551_000],
  threads: [
    { process: "destination agent", pid: 10, tid: 10, comm: "node", role: "loop", cpu_ms: [100, 110, 400], wait_ms: [1, 2, 30] },
    { process: "destination agent", pid: 10, tid: 11, comm: "ppsim-bulk-rx", role: "bulk", cpu_ms: [0, 1, 201], wait_ms: [0, 0, 5] },
    { process: "destination agent", pid: 10, tid: 12, comm: "ppsim-bulk-rx", role: "bulk", cpu_ms: [null, null, 50], wait_ms: [null, null, null] },
    { process: "destination guest", pid: 20, tid: 21, comm: "ppsim-vcpu0", role: "vcpu", cpu_ms: [5, 5, 105], wait_ms: [0, 0, 40] },
  ],
});

describe("cpuBetween and spanMs", () => {
  it("sums each process's role between two marks, a thread born meanwhile from 0", () => {
    const g = cpuBetween(account(), "resumed", "end");
    expect(g).toEqual([
      { process: "destination agent", role: "loop", threads: 1, cpu_ms: 290, wait_ms: 28 },
      { process: "destination agent", role: "bulk", threads: 2, cpu_ms: 250, wait_ms: 5 },
      { process: "destination guest", role: "vcpu", threads: 1, cpu_ms: 100, wait_ms: 40 },
    ]);
    expect(spanMs(account(), "resumed", "end")).toBe(500);
    expect(cpuBetween(account(), "pause", "end")).toBeNull();
    expect(spanMs(account(), "start", "nope")).toBeNull();
  });
});

describe("checkCpuAccount (a peer's account)", () => {
  it("keeps a well-formed one as it is", () => {
    expect(checkCpuAccount(account())).toEqual(account());
  });

  it("makes names safe to print", () => {
    const a = account();
    a.threads[0].comm = "evil\x1b[2J\n";
    expect(checkCpuAccount(a)?.threads[0].comm).toBe("evil\\x1b[2J\\x0a");
  });

  it("refuses malformed ones", () => {
    const bad: ((a: CpuAccount) => unknown)[] = [
      () => null,
      () => "x",
      (a) => ({ ...a, marks: "start" }),
      (a) => ({ ...a, at_us: [1, 2] }),
      (a) => ({ ...a, at_us: [1, 2, Infinity] }),
      (a) => ({ ...a, threads: [{ ...a.threads[0], cpu_ms: [1, 2] }] }),
      (a) => ({ ...a, threads: [{ ...a.threads[0], cpu_ms: [1, -2, 3] }] }),
      (a) => ({ ...a, threads: [{ ...a.threads[0], wait_ms: [1, "2", 3] }] }),
      (a) => ({ ...a, threads: [{ ...a.threads[0], tid: 0 }] }),
      (a) => ({ ...a, threads: [{ ...a.threads[0], comm: "x".repeat(65) }] }),
      (a) => ({ ...a, threads: Array.from({ length: 4097 }, () => a.threads[0]) }),
      (a) => ({ ...a, marks: Array.from({ length: 9 }, (_, i) => String(i)), at_us: Array.from({ length: 9 }, () => 0) }),
    ];
    for (const f of bad) expect(checkCpuAccount(f(account())), JSON.stringify(f(account())).slice(0, 120)).toBeNull();
  });
});
