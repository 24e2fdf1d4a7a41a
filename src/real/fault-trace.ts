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
 * The loop side is fault-trace-loop.ts; `node dist/bench/fault-trace.js DIR`
 * joins the two files of a session (fault-trace-join.ts).
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { monoUs } from "./fault-trace-clock.js";
import { LoopWatch, type LoopTrace } from "./fault-trace-loop.js";

export { monoUs } from "./fault-trace-clock.js";
export type { LoopTrace } from "./fault-trace-loop.js";

export const FAULT_TRACE_ENV = "PPSIM_FAULT_TRACE";

/** Bounds what one agent keeps (a trace is for runs of a few thousand faults). */
const MAX_FAULTS = 100_000;

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

export interface TraceFile<F> {
  role: "destination" | "source";
  session: string;
  pid: number;
  faults: F[];
  loop: LoopTrace;
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
