/**
 * The switchover's window in SCHED_RR (PPSIM_SWITCHOVER_RR, src/real/loop-priority.ts) is the
 * default and bounded: its value (unset = the default, 0 = off, anything else refused at an
 * agent's start), its time cap (a window whose end never comes closes itself, logged), and a
 * destination whose peer sends a post-copy hello and then nothing: its loop, raised at the
 * hello, is back in the normal class while the session still waits. Each check waits for
 * what it must see (a log line, a timer's order); no measured time decides.
 */
import { execFileSync, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { describe, expect, it } from "vitest";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { DEFAULT_SWITCHOVER_RR, loopRealtimePriority, SCHED_RR, schedPolicy, switchoverRealtimePriority, SWITCHOVER_WINDOW_MAX_MS } from "../src/real/loop-priority.js";
import { DEFAULT_LANE_RR } from "../src/real/lane-priority.js";
import { hello, infoFor, openPair, PS, sessionId, watch } from "./support/hostile-peer.js";
import { mayRealtime } from "./support/realtime.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
const dist = (p: string): string => JSON.stringify(new URL(`../dist/src/${p}`, import.meta.url).href);

function withEnv<T>(name: string, v: string | undefined, f: () => T): T {
  const before = process.env[name];
  if (v === undefined) delete process.env[name];
  else process.env[name] = v;
  try {
    return f();
  } finally {
    if (before === undefined) delete process.env[name];
    else process.env[name] = before;
  }
}

describe("PPSIM_SWITCHOVER_RR: its value", () => {
  it("unset or empty is the default (1, as the lane's); 0 is off; 1 … 99 that priority; anything else refused with what it takes", () => {
    expect([DEFAULT_SWITCHOVER_RR, DEFAULT_LANE_RR]).toEqual([1, 1]);
    for (const [v, n] of [[undefined, 1], ["", 1], [" ", 1], ["0", 0], ["1", 1], ["99", 99], [" 7 ", 7]] as const) {
      expect(withEnv("PPSIM_SWITCHOVER_RR", v, switchoverRealtimePriority), String(v)).toBe(n);
    }
    for (const v of ["100", "-1", "1.5", "rr", "0x10", "1e1"]) {
      expect(() => withEnv("PPSIM_SWITCHOVER_RR", v, switchoverRealtimePriority), v).toThrow(
        `PPSIM_SWITCHOVER_RR must be an integer 0 … 99 (0: off, 1 … 99: the switchover's window in SCHED_RR at that priority), not ${JSON.stringify(v)}`,
      );
    }
  });

  it("a bad value is refused when a destination agent starts, before anything listens", async () => {
    const before = process.env.PPSIM_SWITCHOVER_RR;
    process.env.PPSIM_SWITCHOVER_RR = "high";
    try {
      await expect(DestinationAgent.listen("127.0.0.1", 0)).rejects.toThrow(/PPSIM_SWITCHOVER_RR must be an integer 0 … 99/);
    } finally {
      if (before === undefined) delete process.env.PPSIM_SWITCHOVER_RR;
      else process.env.PPSIM_SWITCHOVER_RR = before;
    }
  });

  it("PPSIM_LOOP_RR (opt-in, off by default) is read the same way, and refused at an agent's start too", async () => {
    for (const [v, n] of [[undefined, 0], ["", 0], ["0", 0], ["3", 3]] as const) expect(withEnv("PPSIM_LOOP_RR", v, loopRealtimePriority), String(v)).toBe(n);
    for (const v of ["100", "-1", "on", "0x1"]) expect(() => withEnv("PPSIM_LOOP_RR", v, loopRealtimePriority), v).toThrow(`PPSIM_LOOP_RR must be an integer 0 … 99 (0: off, 1 … 99: the event loops and the guests' control threads in SCHED_RR at that priority), not ${JSON.stringify(v)}`);
    await expect(withEnv("PPSIM_LOOP_RR", "fast", () => DestinationAgent.listen("127.0.0.1", 0))).rejects.toThrow(/PPSIM_LOOP_RR must be an integer 0 … 99/);
  });
});

describe("the switchover's window: bounded", () => {
  it("a window never closed by its end closes itself after its cap, logged once; the closer after it changes nothing", () => {
    // In a child: this runner's thread keeps its class. The 50 ms cap fires before the 300 ms sample (timers in order).
    const script = `
      import(${dist("real/loop-priority.js")}).then((m) => {
        const log = [];
        const close = m.raiseForSwitchover((l) => log.push(l), 50);
        const inside = m.schedPolicy(0);
        setTimeout(() => {
          const after = m.schedPolicy(0);
          const w = m.switchoverWindows();
          close();
          process.stdout.write(JSON.stringify({ inside, after, w, again: m.switchoverWindows(), log }));
        }, 300);
      });`;
    const env: NodeJS.ProcessEnv = { ...process.env, PPSIM_SWITCHOVER_RR: "2" };
    delete env.PPSIM_LOOP_RR;
    const o = JSON.parse(execFileSync(process.execPath, ["-e", script], { env }).toString()) as {
      inside: { policy: number; priority: number };
      after: { policy: number };
      w: { open: number; capped: number; error: string | null };
      again: { open: number; capped: number };
      log: string[];
    };
    expect(o.after.policy).toBe(0);
    if (!mayRealtime()) {
      expect(o.inside.policy).toBe(0);
      expect(o.w.error).toMatch(/EPERM/);
      expect(o.log).toEqual([expect.stringMatching(/^switchover window left in the normal scheduling class/)]);
      return;
    }
    expect(o.inside).toMatchObject({ policy: SCHED_RR, priority: 2 });
    expect(o.w).toEqual({ open: 0, capped: 1, error: null });
    expect(o.again).toEqual({ open: 0, capped: 1, error: null });
    expect(o.log).toEqual(["switchover window closed after 50 ms without its end (the scheduling class back to normal)"]);
  });

  it.skipIf(unavailable !== null)("a destination whose peer sends a post-copy hello and then nothing: its loop back in the normal class after the cap, the session still open", async () => {
    // The destination agent in a child (its loop is the one raised), with the defaults; its log comes as lines on stdout.
    const child = `
      const [{ DestinationAgent }, loop] = await Promise.all([${dist("real/dest-agent.js")}, ${dist("real/loop-priority.js")}].map((m) => import(m)));
      const agent = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => process.stdout.write(JSON.stringify({ log: l }) + "\\n"), setupTimeoutMs: 60000 });
      process.stdout.write(JSON.stringify({ port: agent.port }) + "\\n");
      process.stdin.on("data", () => process.stdout.write(JSON.stringify({ self: loop.schedPolicy(0), windows: loop.switchoverWindows() }) + "\\n"));
      process.stdin.on("end", () => agent.close().then(() => process.exit(0)));
    `;
    const env = { ...process.env };
    for (const k of ["PPSIM_LOOP_RR", "PPSIM_SWITCHOVER_RR", "PPSIM_LANE_RR"]) delete env[k];
    const p = spawn(process.execPath, ["--input-type=module", "-e", child], { env, stdio: ["pipe", "pipe", "inherit"] });
    const lines: Record<string, unknown>[] = [];
    const waiters: [(l: Record<string, unknown>) => boolean, () => void][] = [];
    createInterface({ input: p.stdout }).on("line", (s) => {
      const l = JSON.parse(s) as Record<string, unknown>;
      lines.push(l);
      for (const w of waiters.splice(0)) (w[0](l) ? w[1] : () => waiters.push(w))();
    });
    const until = (f: (l: Record<string, unknown>) => boolean): Promise<Record<string, unknown>> => {
      const seen = lines.find(f);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((r) => waiters.push([f, () => r(lines.find(f)!)]));
    };
    try {
      const { port } = (await until((l) => "port" in l)) as { port: number };
      const GUEST = 8 << 20;
      const { urgent, bulk } = await openPair(port, sessionId(0x5e1f), infoFor(GUEST));
      const b = watch(bulk);
      bulk.write(hello(GUEST / PS));
      await b.first("helloAck");
      const line = mayRealtime() ? /switchover window closed after \d+ ms without its end/ : /switchover window left in the normal scheduling class/;
      await until((l) => typeof l.log === "string" && line.test(l.log));
      p.stdin.write("?");
      const st = (await until((l) => "self" in l)) as { self: { policy: number }; windows: { open: number; capped: number } };
      expect(st.self.policy).toBe(0);
      expect(st.windows.open).toBe(0);
      if (mayRealtime()) {
        expect(st.windows.capped).toBe(1);
        expect(lines.filter((l) => typeof l.log === "string" && (l.log as string).includes(`closed after ${SWITCHOVER_WINDOW_MAX_MS} ms`)).length).toBe(1);
      }
      // The session did not end for it: nothing closed the peer's connections.
      expect(b.frames.map((f) => f.type)).not.toContain("error");
      expect(bulk.destroyed).toBe(false);
      urgent.destroy();
      bulk.destroy();
    } finally {
      p.stdin.end();
      await new Promise((r) => p.once("exit", r));
    }
  });
});

// schedPolicy of this runner's own thread stays normal whatever ran above (in-process agents included).
it("this test runner's thread is in the normal class at the end", () => {
  expect(schedPolicy(0).policy).toBe(0);
});
