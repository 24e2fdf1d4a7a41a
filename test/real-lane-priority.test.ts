/**
 * PPSIM_LANE_RR=N (src/real/lane-priority.ts): exactly the three threads on a
 * demand fault's way — the destination's fault reader and lane receiver, the
 * source's lane server — run in SCHED_RR at N; the bulk threads, event loops,
 * guests' threads and vCPUs stay in the normal class. On by default (unset or
 * empty: DEFAULT_LANE_RR), off at 0; a bad value is refused; where the process
 * may not, it says so once and the migration goes on as it would without it.
 *
 * A real post-copy (both agents in one child process, so this runner's
 * threads keep their class) is sampled at one point where all three threads
 * run for sure: the destination's "guest running" log line, written after
 * the switchover's RESUME and before the session can end. Nothing here
 * depends on timing.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { DEFAULT_LANE_RR, laneRealtimePriority } from "../src/real/lane-priority.js";
import { SCHED_RR } from "../src/real/loop-priority.js";
import { closeFd, createFaultLane, createLaneServer, memfdCreate, socketPair, startFaultReader, uffdApi, uffdCreate, constants } from "../src/real/native.js";
import { loadAddon } from "../src/real/native-load.js";
import { mayRealtime } from "./support/realtime.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
const dist = (p: string): string => JSON.stringify(new URL(`../dist/src/${p}`, import.meta.url).href);

/** The child: a 8 MiB guest migrated post-copy, every thread of it and its guests sampled at the destination's "guest running". */
const CHILD = `
import { readdirSync, readFileSync } from "node:fs";
const [{ DestinationAgent }, { SourceAgent }, { parseWorkload }, lane, loop] = await Promise.all(
  [${dist("real/dest-agent.js")}, ${dist("real/source-agent.js")}, ${dist("workload/parse.js")}, ${dist("real/lane-priority.js")}, ${dist("real/loop-priority.js")}].map((m) => import(m)));
const tasks = (pid) => { try { return readdirSync("/proc/" + pid + "/task").map(Number); } catch { return []; } };
// The guests: processes whose parent is this one (their stat's 4th field, after the name in parentheses).
const children = () => readdirSync("/proc").filter((d) => /^\\d+$/.test(d)).filter((d) => {
  try { return Number(readFileSync("/proc/" + d + "/stat", "utf8").split(") ")[1].split(" ")[1]) === process.pid; } catch { return false; }
}).map(Number);
const sample = () => [process.pid, ...children()].flatMap((pid) => tasks(pid).flatMap((tid) => { try { return [{ pid, tid, ...loop.schedPolicy(tid) }]; } catch { return []; } }));
const log = [];
let snap = null;
const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => { log.push("[dst] " + l); if (snap === null && l.includes("destination guest running")) snap = { tasks: sample(), raised: lane.laneThreadsRaised() }; } });
const PAGES = 2048;
const workload = parseWorkload({ ppsim_workload: 1, name: "sweep", memory: "8MiB", page_size: 4096, vcpus: 2, zero_share: 0.3, warmup_ms: 50,
  phases: [{ name: "sweep", steps: PAGES, compute_ns: 20000, write_share: 0.5, pattern: { kind: "sequential" } }] });
const src = await SourceAgent.start({ workload, steps: 4 * PAGES, mode: "postcopy", seed: 5, peer: { host: "127.0.0.1", port: dest.port }, log: (l) => log.push("[src] " + l) });
const r = await src.migrate();
await src.close();
await dest.close();
process.stdout.write(JSON.stringify({ self: process.pid, outcome: r.outcome, reason: r.reason, verified: r.verified, snap, log }));
`;

interface Task {
  pid: number;
  tid: number;
  policy: number;
  resetOnFork: boolean;
  priority: number;
}
interface Out {
  self: number;
  outcome: string;
  reason: string;
  verified: boolean;
  snap: { tasks: Task[]; raised: { threads: { which: string; tid: number; priority: number }[]; refused: string | null } } | null;
  log: string[];
}

/**
 * Runs the child with PPSIM_LANE_RR = v (undefined: unset), optionally under `wrap` (a command and its
 * arguments before node); the switchover's window off (`switchover`: its value, null = unset), so
 * that only the lane's threads are raised unless the test asks.
 */
function migrate(v: string | undefined, wrap: string[] = [], switchover: string | null = "0"): Out {
  const env: NodeJS.ProcessEnv = { ...process.env, PPSIM_LOOP_RR: "0", PPSIM_VCPU_NICE: "0" };
  if (switchover === null) delete env.PPSIM_SWITCHOVER_RR;
  else env.PPSIM_SWITCHOVER_RR = switchover;
  if (v === undefined) delete env.PPSIM_LANE_RR;
  else env.PPSIM_LANE_RR = v;
  const argv = [...wrap, process.execPath, "--input-type=module", "-e", CHILD];
  const out = execFileSync(argv[0], argv.slice(1), { env, maxBuffer: 64 << 20 }).toString();
  return JSON.parse(out) as Out;
}

/** The run verified, was sampled, and every thread of it and its guests but `rt` is in the normal class. */
function expectNormalBut(o: Out, rt: number[]): Task[] {
  const why = `${o.outcome}: ${o.reason}\n${o.log.join("\n")}`;
  expect(o.outcome, why).toBe("completed");
  expect(o.verified, why).toBe(true);
  expect(o.snap, why).not.toBeNull();
  const tasks = o.snap!.tasks;
  // Both agents' threads (loops, bulk senders and receivers, pools) and two guests' (control threads, vCPUs).
  expect(new Set(tasks.map((t) => t.pid)).size, why).toBe(3);
  expect(tasks.filter((t) => !rt.includes(t.tid)).filter((t) => t.policy !== 0), why).toEqual([]);
  return tasks;
}

describe("PPSIM_LANE_RR: its value", () => {
  it("unset or empty is the default (1); 0 is off; 1 … 99 is that priority; anything else is refused with what it takes", () => {
    const before = process.env.PPSIM_LANE_RR;
    try {
      expect(DEFAULT_LANE_RR).toBe(1);
      for (const [v, n] of [[undefined, 1], ["", 1], ["0", 0], ["1", 1], ["99", 99], [" 7 ", 7]] as const) {
        if (v === undefined) delete process.env.PPSIM_LANE_RR;
        else process.env.PPSIM_LANE_RR = v;
        expect(laneRealtimePriority(), String(v)).toBe(n);
      }
      for (const v of ["100", "-1", "1.5", "rr", "0x10", "1e3"]) {
        process.env.PPSIM_LANE_RR = v;
        expect(() => laneRealtimePriority(), v).toThrow(`PPSIM_LANE_RR must be an integer 0 … 99 (0: off, 1 … 99: the fault lane's threads in SCHED_RR at that priority), not ${JSON.stringify(v)}`);
      }
    } finally {
      if (before === undefined) delete process.env.PPSIM_LANE_RR;
      else process.env.PPSIM_LANE_RR = before;
    }
  });

  it("schedRealtimeThread refuses tid 0 (a thread that does not run) and priorities outside 1 … 99", () => {
    const raw = loadAddon<{ schedRealtimeThread(tid: number, prio: number): void }>();
    expect(() => raw.schedRealtimeThread(0, 1)).toThrow(/tid must be a running thread's id/);
    expect(() => raw.schedRealtimeThread(process.pid, 0)).toThrow(/priority must be 1 … 99/);
    expect(() => raw.schedRealtimeThread(process.pid, 100)).toThrow(/priority must be 1 … 99/);
  });
});

describe.skipIf(unavailable !== null)("PPSIM_LANE_RR: the threads", () => {
  it("each native end reports its thread's id while it runs (a task of this process), 0 before and after", () => {
    const C = constants();
    const tasks = (): number[] => readdirSync(`/proc/${process.pid}/task`).map(Number);
    const [a, b] = socketPair();
    const mem = memfdCreate("lane-rr-tid", C.PAGE_SIZE);
    const uffd = uffdCreate();
    try {
      uffdApi(uffd, 0);
      const server = createLaneServer(b, mem, C.PAGE_SIZE, 1, 1000, () => undefined);
      const lane = createFaultLane(a, 1000, () => undefined);
      expect([server.tid(), lane.tid()]).toEqual([0, 0]);
      server.start(new Uint8Array(0));
      lane.start(new Uint8Array(0));
      const reader = startFaultReader(uffd, () => undefined);
      const ids = [server.tid(), lane.tid(), reader.tid()];
      expect(new Set(ids).size).toBe(3);
      for (const id of ids) expect(tasks()).toContain(id);
      reader.stop();
      lane.stop();
      server.stop();
      expect([server.tid(), lane.tid(), reader.tid()]).toEqual([0, 0, 0]);
    } finally {
      for (const fd of [a, b, mem, uffd]) closeFd(fd);
    }
  });

  it("on: the fault reader, the lane receiver and the lane server in SCHED_RR at N, reset-on-fork; nothing else", () => {
    const o = migrate("7");
    const raised = o.snap?.raised;
    if (!mayRealtime()) {
      expect(raised?.threads).toEqual([]);
      expect(raised?.refused).toMatch(/EPERM/);
      expectNormalBut(o, []);
      return;
    }
    expect(raised?.refused).toBeNull();
    expect(raised?.threads.map((t) => t.which).sort()).toEqual(["fault lane", "fault reader", "lane server"]);
    const rt = raised!.threads.map((t) => t.tid);
    const tasks = expectNormalBut(o, rt);
    // In the agents' process (none a guest's), each at the priority asked.
    for (const tid of rt) expect(tasks.find((t) => t.tid === tid)).toEqual({ pid: o.self, tid, policy: SCHED_RR, resetOnFork: true, priority: 7 });
  });

  it("at 0: every thread in the normal class, nothing raised", () => {
    const o = migrate("0");
    expect(o.snap?.raised).toEqual({ threads: [], refused: null });
    expectNormalBut(o, []);
  });

  it("by default (both knobs unset): the lane's three threads at DEFAULT_LANE_RR; the loops back in the normal class once the guest runs", () => {
    const o = migrate(undefined, [], null);
    const raised = o.snap?.raised;
    if (!mayRealtime()) {
      expect(raised?.threads).toEqual([]);
      expect(raised?.refused).toMatch(/EPERM/);
      expectNormalBut(o, []);
      return;
    }
    expect(raised?.refused).toBeNull();
    expect(raised?.threads.map((t) => [t.which, t.priority]).sort()).toEqual([["fault lane", 1], ["fault reader", 1], ["lane server", 1]]);
    const why = `${o.outcome}: ${o.reason}\n${o.log.join("\n")}`;
    expect([o.outcome, o.verified], why).toEqual(["completed", true]);
    const tasks = o.snap!.tasks;
    const lane = raised!.threads.map((t) => t.tid);
    // The agents' process: its loop (the main thread, its tid its pid) is out of the switchover's window, and
    // nothing but the lane's threads is in SCHED_RR; the guests' control threads (each guest's main thread)
    // are in it for their life (--control-rr, idle but for PAUSE and RESUME). A destination vCPU may still be
    // in it at this instant (until its first step), so the guests' other threads are not asserted here.
    const agents = tasks.filter((t) => t.pid === o.self);
    expect(agents.filter((t) => !lane.includes(t.tid) && t.policy !== 0), why).toEqual([]);
    expect(agents.find((t) => t.tid === o.self)?.policy, why).toBe(0);
    const controls = tasks.filter((t) => t.pid !== o.self && t.tid === t.pid);
    expect(controls.map((t) => [t.policy, t.priority, t.resetOnFork]), why).toEqual([[SCHED_RR, 1, true], [SCHED_RR, 1, true]]);
  });

  it.skipIf(!existsSync("/usr/bin/setpriv") || !mayRealtime())("without the privilege: refused once, logged once, the run as without the option", () => {
    // CAP_SYS_NICE out of the child's bounding and inheritable sets (RLIMIT_RTPRIO is 0 here: mayRealtime came from the capability).
    const o = migrate("7", ["setpriv", "--inh-caps=-sys_nice", "--bounding-set=-sys_nice"]);
    expect(o.snap?.raised.threads).toEqual([]);
    expect(o.snap?.raised.refused).toMatch(/sched_setscheduler\(thread \d+, SCHED_RR\|SCHED_RESET_ON_FORK, priority 7\) failed: EPERM/);
    expect(o.log.filter((l) => l.includes("fault lane's threads left in the normal scheduling class")).length).toBe(1);
    expectNormalBut(o, []);
  });
});
