/**
 * One agent's event loop while a fault trace runs (fault-trace.ts): its
 * delay histogram, every 1 ms timer turn over STALL_US late with how much of
 * it the loop's thread waited for a CPU (its schedstat) and how much the
 * loop was busy, every GC pause, every callback over LONG_CALLBACK_US by
 * resource type, and each thread's CPU time and run-queue wait.
 */
import { createHook, type AsyncHook } from "node:async_hooks";
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import { monitorEventLoopDelay, PerformanceObserver, performance, type IntervalHistogram } from "node:perf_hooks";
import { monoUs } from "./fault-trace-clock.js";

/** A timer turn this late counts as a stall of the loop. */
const STALL_US = 2000;
/** A callback that runs this long on the loop is named (async_hooks' resource type). */
const LONG_CALLBACK_US = 1000;
/** Bounds what one agent keeps. */
const MAX_EVENTS = 100_000;

export interface LoopTrace {
  delayUs: { p50: number; p99: number; max: number; count: number };
  /**
   * [at, µs late, µs the loop's thread waited for a CPU meanwhile (runnable, not running), µs the loop was busy meanwhile]
   * of each timer turn over STALL_US late: waiting is the scheduler's share of the stall, busy the loop's own work.
   */
  stalls: [number, number, number, number][];
  /** [at, µs, kind] of each GC (kind: perf_hooks' constants.NODE_PERFORMANCE_GC_*). */
  gc: [number, number, number][];
  /** [at, µs, resource type] of each callback that ran over LONG_CALLBACK_US (the outermost of nested ones). */
  long: [number, number, string][];
  /** The loop's utilisation over the trace (performance.eventLoopUtilization): busy / (busy + idle). */
  utilisation: number;
  /** Each thread of this process over the trace (/proc/self/task/TID/schedstat): on a CPU, and runnable but waiting for one, ms. */
  threads: { name: string; runMs: number; waitMs: number }[];
}

/** "file:line" of the caller of setImmediate/setTimeout, from inside an async_hooks init. */
function scheduledAt(): string {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 12;
  const stack = new Error().stack ?? "";
  Error.stackTraceLimit = limit;
  const frame = stack.split("\n").find((l) => l.includes("file://") && !l.includes("fault-trace"));
  return frame?.replace(/^.*\/(dist\/)?/, "").replace(/\)$/, "") ?? "?";
}

function openStat(): number | null {
  try {
    return openSync(`/proc/self/task/${process.pid}/schedstat`, "r");
  } catch {
    return null;
  }
}

/** tid → [name, ns on a CPU, ns waiting on a run queue] of this process's threads now. */
function schedstats(): Map<string, [string, number, number]> {
  const out = new Map<string, [string, number, number]>();
  let tids: string[] = [];
  try {
    tids = readdirSync("/proc/self/task");
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const [run, wait] = readFileSync(`/proc/self/task/${tid}/schedstat`, "utf8").split(" ").map(Number);
      out.set(tid, [readFileSync(`/proc/self/task/${tid}/comm`, "utf8").trim(), run, wait]);
    } catch {
      // the thread ended, or no schedstats in this kernel
    }
  }
  return out;
}
/** The event loop's delays, stalls and GC pauses while a trace runs. */
export class LoopWatch {
  private readonly hist: IntervalHistogram = monitorEventLoopDelay({ resolution: 1 });
  private readonly stalls: [number, number, number, number][] = [];
  /** The loop thread's schedstat, read every tick (pread at 0 gives fresh content). */
  private readonly statFd: number | null = openStat();
  private readonly statBuf = Buffer.alloc(128);
  private lastWaitNs = 0;
  private lastElu = performance.eventLoopUtilization();
  private readonly gc: [number, number, number][] = [];
  private readonly long: [number, number, string][] = [];
  private readonly types = new Map<number, string>();
  private readonly hook: AsyncHook;
  private depth = 0;
  private enteredAt = 0;
  private enteredType = "";
  private readonly elu = performance.eventLoopUtilization();
  private readonly sched = schedstats();
  private readonly obs: PerformanceObserver;
  private readonly timer: NodeJS.Timeout;
  private last = monoUs();
  /** performance.now() (ms since timeOrigin) → CLOCK_MONOTONIC µs. */
  private readonly perfToMono = monoUs() - performance.now() * 1000;

  constructor() {
    this.hist.enable();
    // What runs long on the loop: each outermost callback's duration, by the type of the resource that made it.
    this.hook = createHook({
      // Immediates and timeouts are named by where they were scheduled (the frame that called setImmediate/setTimeout).
      init: (id, type) => void this.types.set(id, type === "Immediate" || type === "Timeout" ? `${type} ${scheduledAt()}` : type),
      destroy: (id) => void this.types.delete(id),
      before: (id) => {
        if (this.depth++ > 0) return;
        this.enteredAt = monoUs();
        this.enteredType = this.types.get(id) ?? "?";
      },
      after: () => {
        if (this.depth === 0) return; // the callback that enabled the hook: its start was not seen
        if (--this.depth > 0) return;
        const us = monoUs() - this.enteredAt;
        if (us > LONG_CALLBACK_US && this.long.length < MAX_EVENTS) this.long.push([Math.round(this.enteredAt), Math.round(us), this.enteredType]);
      },
    });
    this.hook.enable();
    this.obs = new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (this.gc.length >= MAX_EVENTS) return;
        const kind = (e as unknown as { detail?: { kind?: number } }).detail?.kind ?? 0;
        this.gc.push([Math.round(e.startTime * 1000 + this.perfToMono), Math.round(e.duration * 1000), kind]);
      }
    });
    this.obs.observe({ entryTypes: ["gc"] });
    this.lastWaitNs = this.waitNs();
    this.timer = setInterval(() => {
      const now = monoUs();
      const late = now - this.last - 1000;
      const wait = this.waitNs();
      const elu = performance.eventLoopUtilization();
      if (late > STALL_US && this.stalls.length < MAX_EVENTS) {
        const busyUs = (elu.active - this.lastElu.active) * 1000;
        this.stalls.push([Math.round(this.last + 1000), Math.round(late), Math.round((wait - this.lastWaitNs) / 1000), Math.round(busyUs)]);
      }
      this.last = now;
      this.lastWaitNs = wait;
      this.lastElu = elu;
    }, 1);
    this.timer.unref();
  }

  /** ns the loop's thread has waited on a run queue so far (0 without schedstats). */
  private waitNs(): number {
    if (this.statFd === null) return 0;
    const n = readSync(this.statFd, this.statBuf, 0, this.statBuf.length, 0);
    return Number(this.statBuf.toString("latin1", 0, n).split(" ")[1] ?? 0);
  }

  stop(): LoopTrace {
    if (this.statFd !== null) closeSync(this.statFd);
    clearInterval(this.timer);
    this.hook.disable();
    this.obs.disconnect();
    this.hist.disable();
    const us = (ns: number): number => Math.round(ns / 1000);
    const h = this.hist;
    const threads = [...schedstats()].map(([tid, [name, run, wait]]) => {
      const [, run0, wait0] = this.sched.get(tid) ?? [name, 0, 0];
      return { name: `${name}/${tid}`, runMs: Math.round((run - run0) / 1e5) / 10, waitMs: Math.round((wait - wait0) / 1e5) / 10 };
    });
    const utilisation = Math.round(performance.eventLoopUtilization(this.elu).utilization * 1000) / 1000;
    return { utilisation, threads, delayUs: { p50: us(h.percentile(50)), p99: us(h.percentile(99)), max: us(h.max), count: h.count }, stalls: this.stalls, gc: this.gc, long: this.long };
  }
}
