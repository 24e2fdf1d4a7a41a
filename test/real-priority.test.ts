/**
 * With PPSIM_LOOP_RR=1 the threads on a demand fault's way run in SCHED_RR, and nothing they
 * start inherits it (src/real/loop-priority.ts): an agent's event loop once
 * raiseLoopPriority() ran, a guest's control thread; not the processes and
 * threads they create (guests, vCPUs). Where the process may not (no
 * CAP_SYS_NICE or RLIMIT_RTPRIO) the call says why and changes nothing.
 * Checked in a child process, so this test runner's own loop keeps its class.
 */
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GuestProcess } from "../src/real/guest-process.js";
import { constants } from "../src/real/native.js";
import { SCHED_RR, schedPolicy } from "../src/real/loop-priority.js";
import { mayRealtime } from "./support/realtime.js";

const PS = constants().PAGE_SIZE;

describe("real-time class for the fault's way", () => {
  it("puts the loop in SCHED_RR with reset-on-fork; a process it then starts is in the normal class", () => {
    const mod = new URL("../dist/src/real/loop-priority.js", import.meta.url).href;
    const script = `
      import(${JSON.stringify(mod)}).then((m) => {
        const r = m.raiseLoopPriority();
        const child = require("child_process").spawn("sleep", ["5"]);
        const out = { r, self: m.schedPolicy(0), child: m.schedPolicy(child.pid) };
        child.kill();
        process.stdout.write(JSON.stringify(out));
      });`;
    const out = JSON.parse(execFileSync(process.execPath, ["-e", script], { env: { ...process.env, PPSIM_LOOP_RR: "1" } }).toString()) as {
      r: { priority: number; error: string | null };
      self: { policy: number; resetOnFork: boolean; priority: number };
      child: { policy: number };
    };
    expect(out.child.policy).toBe(0);
    if (out.r.error !== null) {
      expect(mayRealtime()).toBe(false);
      expect(out.self.policy).toBe(0);
      return;
    }
    expect(out.self).toEqual({ policy: SCHED_RR, resetOnFork: true, priority: 1 });
  });

  it("by default (and with PPSIM_LOOP_RR=0) the class is left alone", () => {
    const mod = new URL("../dist/src/real/loop-priority.js", import.meta.url).href;
    const script = `import(${JSON.stringify(mod)}).then((m) => process.stdout.write(JSON.stringify([m.raiseLoopPriority(), m.schedPolicy(0)])));`;
    for (const v of [undefined, "0"]) {
      const env = { ...process.env };
      if (v === undefined) delete env.PPSIM_LOOP_RR;
      else env.PPSIM_LOOP_RR = v;
      const [r, self] = JSON.parse(execFileSync(process.execPath, ["-e", script], { env }).toString()) as [{ priority: number }, { policy: number }];
      expect(r.priority).toBe(0);
      expect(self.policy).toBe(0);
    }
  });

  it("a guest's control thread is in SCHED_RR, its vCPUs in the normal class", async () => {
    const config = [`mem_bytes ${64 * PS}`, `page_size ${PS}`, "vcpus 2", "seed 1", "zero_share 0.3", "phase steps=1000000 compute_ns=1000 write_share=0.5 pattern=uniform region_offset=0 region_size=1 stride=1 hot_share=0.1 hot_access=0.9 exponent=1.1"].join("\n") + "\n";
    const before = process.env.PPSIM_LOOP_RR;
    process.env.PPSIM_LOOP_RR = "1"; // opt-in (and the suite turns it off, vitest.config.ts)
    const g = await GuestProcess.spawn({ role: "source", config, steps: 1_000_000 }).finally(() => {
      if (before === undefined) delete process.env.PPSIM_LOOP_RR;
      else process.env.PPSIM_LOOP_RR = before;
    });
    try {
      await g.run();
      const control = schedPolicy(g.layout.pid);
      let tids: number[] = [];
      while (tids.length === 0 || tids.includes(0)) tids = (await g.progress()).vcpus.map((v) => v.tid); // 0 until a vCPU's thread ran
      const vcpus = tids.map((tid) => schedPolicy(tid).policy);
      expect(vcpus).toEqual([0, 0]);
      if (mayRealtime()) expect(control).toEqual({ policy: SCHED_RR, resetOnFork: true, priority: 1 });
      else expect(control.policy).toBe(0);
    } finally {
      await g.quit();
    }
  });

  it("PPSIM_SWITCHOVER_RR: a window puts the loop in SCHED_RR and its closer (the last of nested ones) takes it back; on by default, off at 0", () => {
    const mod = new URL("../dist/src/real/loop-priority.js", import.meta.url).href;
    const script = `
      import(${JSON.stringify(mod)}).then((m) => {
        const a = m.raiseForSwitchover(); const inA = m.schedPolicy(0);
        const b = m.raiseForSwitchover(); a(); a(); const inB = m.schedPolicy(0);
        b(); const after = m.schedPolicy(0);
        process.stdout.write(JSON.stringify({ inA, inB, after }));
      });`;
    type P = { policy: number; resetOnFork: boolean; priority: number };
    const run = (v: string | undefined): { inA: P; inB: P; after: P } => {
      const env = { ...process.env };
      delete env.PPSIM_LOOP_RR;
      if (v === undefined) delete env.PPSIM_SWITCHOVER_RR;
      else env.PPSIM_SWITCHOVER_RR = v;
      return JSON.parse(execFileSync(process.execPath, ["-e", script], { env }).toString()) as { inA: P; inB: P; after: P };
    };
    const rt = mayRealtime();
    for (const [v, prio] of [["3", 3], [undefined, 1], ["", 1]] as const) {
      const on = run(v);
      expect(on.inA.policy, String(v)).toBe(rt ? SCHED_RR : 0);
      expect(on.inB.policy, String(v)).toBe(rt ? SCHED_RR : 0); // one closer of two: still open
      if (rt) expect(on.inA.priority, String(v)).toBe(prio);
      expect(on.after.policy, String(v)).toBe(0);
    }
    const off = run("0");
    expect([off.inA.policy, off.inB.policy, off.after.policy]).toEqual([0, 0, 0]);
  });

  it("PPSIM_SWITCHOVER_RR: a destination guest's control thread and its waiting vCPUs are in SCHED_RR", async () => {
    const config = [`mem_bytes ${64 * PS}`, `page_size ${PS}`, "vcpus 2", "seed 1", "zero_share 0.3", "phase steps=1000000 compute_ns=1000 write_share=0.5 pattern=uniform region_offset=0 region_size=1 stride=1 hot_share=0.1 hot_access=0.9 exponent=1.1"].join("\n") + "\n";
    const before = process.env.PPSIM_SWITCHOVER_RR;
    process.env.PPSIM_SWITCHOVER_RR = "1";
    const g = await GuestProcess.spawn({ role: "destination", config, steps: 1_000_000 }).finally(() => {
      if (before === undefined) delete process.env.PPSIM_SWITCHOVER_RR;
      else process.env.PPSIM_SWITCHOVER_RR = before;
    });
    try {
      const pid = g.layout.pid;
      const others = () => readdirSync(`/proc/${pid}/task`).map(Number).filter((t) => t !== pid);
      // The vCPU threads set their class as they start: wait (bounded by the test's timeout) for both.
      let rr: number[] = [];
      for (let i = 0; i < 1000 && (rr.length < 2 || !mayRealtime()); i++) {
        rr = others().filter((t) => schedPolicy(t).policy === SCHED_RR);
        if (rr.length >= 2 || !mayRealtime()) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      if (mayRealtime()) {
        expect(schedPolicy(pid).policy).toBe(SCHED_RR);
        expect(rr.length).toBeGreaterThanOrEqual(2);
      } else {
        expect(schedPolicy(pid).policy).toBe(0);
        expect(others().every((t) => schedPolicy(t).policy === 0)).toBe(true);
      }
    } finally {
      await g.quit();
    }
  });
});
