/**
 * Opt-in trace of each demand fault's way end to end (issue 9), for finding
 * where a slow fault's time goes: `PPSIM_FAULT_TRACE=DIR` makes both agents
 * write DIR/<role>-<session>.json when their migration ends. Off (the
 * variable unset), nothing is recorded and the hot paths pay one null check.
 *
 * Every time is CLOCK_MONOTONIC in µs (process.hrtime's clock, and the
 * fault reader thread's): the two agents of a loopback run share it, so the
 * destination's and the source's stamps of one page compare directly.
 *
 * Per fault, the destination stamps the reader thread's read, the JS
 * callback, the request's send, the reply's arrival (and on which channel:
 * a page the bulk stream brought first counts too) and the install's end;
 * the source stamps the request's arrival and the reply's send. Beside
 * them, each agent's event loop over the run: the delay histogram
 * (monitorEventLoopDelay), every turn that came over STALL_US late (a 1 ms
 * timer's lateness, with when), and every GC pause (PerformanceObserver).
 * `node dist/bench/fault-trace.js DIR` joins the files (fault-trace-join.ts).
 */
import { createHook, type AsyncHook } from "node:async_hooks";
import { closeSync, openSync, readdirSync, readFileSync, readSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { monitorEventLoopDelay, PerformanceObserver, performance, type IntervalHistogram } from "node:perf_hooks";

export const FAULT_TRACE_ENV = "PPSIM_FAULT_TRACE";

/** A timer turn this late counts as a stall of the loop. */
const STALL_US = 2000;
/** A callback that runs this long on the loop is named (async_hooks' resource type). */
const LONG_CALLBACK_US = 1000;
/** Bounds what one agent keeps (a trace is for runs of a few thousand faults). */
const MAX_FAULTS = 100_000;
const MAX_EVENTS = 100_000;

/** CLOCK_MONOTONIC µs. */
export function monoUs(): number {
  return Number(process.hrtime.bigint()) / 1000;
}

/** The destination's stamps of one fault (null: not reached). */
export interface DestFaultStamps {
  page: number;
  read: number;
  js: number;
  requested: number | null;
  arrived: number | null;
  channel: "urgent" | "bulk" | null;
  installed: number | null;
}

export interface SourceFaultStamps {
  page: number;
  arrived: number;
  replied: number | null;
}

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

export interface TraceFile<F> {
  role: "destination" | "source";
  session: string;
  pid: number;
  faults: F[];
  loop: LoopTrace;
}

/** The event loop's delays, stalls and GC pauses while a trace runs. */
class LoopWatch {
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

function write<F>(dir: string, f: TraceFile<F>): string {
  const path = join(dir, `${f.role}-${f.session}.json`);
  writeFileSync(path, JSON.stringify(f));
  return path;
}

/** The trace directory, or null when tracing is off. */
export function faultTraceDir(): string | null {
  const d = process.env[FAULT_TRACE_ENV];
  return d === undefined || d === "" ? null : d;
}

export class DestFaultTrace {
  private readonly faults: DestFaultStamps[] = [];
  /** The open (not yet installed) fault of each page. */
  private readonly open = new Map<number, DestFaultStamps>();
  private readonly loop = new LoopWatch();
  private done = false;

  constructor(
    private readonly dir: string,
    private readonly session: string,
  ) {}

  fault(page: number, readUs: number): void {
    if (this.open.has(page) || this.faults.length >= MAX_FAULTS) return; // a second vCPU on the same page shares the first's way
    const f: DestFaultStamps = { page, read: readUs, js: monoUs(), requested: null, arrived: null, channel: null, installed: null };
    this.faults.push(f);
    this.open.set(page, f);
  }

  requested(page: number): void {
    const f = this.open.get(page);
    if (f !== undefined && f.requested === null) f.requested = monoUs();
  }

  arrived(pages: ArrayLike<number>, channel: "urgent" | "bulk"): void {
    if (this.open.size === 0) return;
    const now = monoUs();
    for (let i = 0; i < pages.length; i++) {
      const f = this.open.get(pages[i]);
      if (f !== undefined && f.arrived === null) {
        f.arrived = now;
        f.channel = channel;
      }
    }
  }

  /** After the pages' install returned (or, preinstalled by the native receiver, once the engine booked them). */
  installed(pages: ArrayLike<number>): void {
    if (this.open.size === 0) return;
    const now = monoUs();
    for (let i = 0; i < pages.length; i++) {
      const f = this.open.get(pages[i]);
      if (f === undefined || f.arrived === null) continue;
      f.installed = now;
      this.open.delete(pages[i]);
    }
  }

  /** Writes the file once; returns its path. */
  finish(): string | null {
    if (this.done) return null;
    this.done = true;
    return write(this.dir, { role: "destination", session: this.session, pid: process.pid, faults: this.faults, loop: this.loop.stop() });
  }
}

export class SourceFaultTrace {
  private readonly faults: SourceFaultStamps[] = [];
  private readonly open = new Map<number, SourceFaultStamps>();
  private readonly loop = new LoopWatch();
  private done = false;

  constructor(
    private readonly dir: string,
    private readonly session: string,
  ) {}

  request(page: number): void {
    if (this.open.has(page) || this.faults.length >= MAX_FAULTS) return;
    const f: SourceFaultStamps = { page, arrived: monoUs(), replied: null };
    this.faults.push(f);
    this.open.set(page, f);
  }

  /** After the urgent reply carrying these pages was handed to the socket. */
  replied(pages: ArrayLike<number>): void {
    if (this.open.size === 0) return;
    const now = monoUs();
    for (let i = 0; i < pages.length; i++) {
      const f = this.open.get(pages[i]);
      if (f === undefined) continue;
      f.replied = now;
      this.open.delete(pages[i]);
    }
  }

  finish(): string | null {
    if (this.done) return null;
    this.done = true;
    return write(this.dir, { role: "source", session: this.session, pid: process.pid, faults: this.faults, loop: this.loop.stop() });
  }
}
