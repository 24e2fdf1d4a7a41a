/**
 * The simulator's driver: wires a Source and a Destination engine to the
 * simulated link and guests, and owns virtual time (µs; 0 = the guest boots,
 * the migration starts after the workload's warmup).
 */
import { ZERO_HOLE_MAX_PAGE } from "./host-runs.js";
import { populatedHost } from "./host-populated.js";
import { Destination } from "../engine/destination.js";
import { driveDestination, driveSource, type DestinationEffects, type SourceEffects } from "../engine/drive.js";
import type { EndCause } from "../engine/events.js";
import type { Channel } from "../engine/messages.js";
import { buildSnapshot } from "../engine/metrics.js";
import { resolveOptions, type MigrationOptions } from "../engine/options.js";
import type { Report, Snapshot } from "../engine/report.js";
import { Source } from "../engine/source.js";
import type { ProgressTrace } from "../disruption/recorder.js";
import { compilePhases } from "../workload/generator.js";
import type { Workload } from "../workload/types.js";
import { destinationEffects, duty, laneServe, sourceEffects, type SimWorld } from "./engine-effects.js";
import { EngineTimers } from "./engine-timers.js";
import { EventQueue } from "./event-queue.js";
import { Guest, GuestShared } from "./guest.js";
import { TaskedGuest } from "./async-faults.js";
import { migrationView } from "./huge-pages.js";
import { Link, type Direction } from "./link.js";
import { simReport } from "./sim-report.js";
import { checkHostProfile, type HostProfile } from "./host.js";
import { loopWaitUs, withStreaming } from "./host-cpu.js";
import { ProgressMeter } from "./progress.js";
import { ExpectedMemory, type Verification } from "./expected-memory.js";
import { DEFAULT_MAX_VIRTUAL_MS, type Msg, type Outage, type SimConfig, type SimEvent } from "./sim-config.js";
import { SimStandby } from "./standby.js";
import { StandbyRun } from "./standby-run.js";
import { DEFAULT_STANDBY } from "../engine/standby.js";

export { parseLink, formatLink, type LinkSpec } from "./link.js";
export { DEFAULT_MAX_VIRTUAL_MS, type Outage, type SimConfig } from "./sim-config.js";

const PROGRESS_WINDOW_US = 200_000;

export class Simulation {
  readonly options: MigrationOptions;
  readonly seed: number;
  private readonly workload: Workload;
  /** The workload as written (`workload` is its migration view: huge-pages.ts). */
  private readonly written: Workload;
  private readonly queue = new EventQueue<SimEvent>();
  private readonly link: Link<Msg>;
  private readonly shared: GuestShared;
  private readonly srcGuest: Guest | TaskedGuest;
  private readonly dstGuest: Guest | TaskedGuest;
  private readonly source: Source<number>;
  private readonly dest: Destination<number>;
  private readonly progress: ProgressMeter;
  private readonly startUs: number;
  private readonly deadlineUs: number;
  /** Time of the event being handled: the engines' and the guests' clock. */
  private now = 0;
  /**
   * Where an observer stepped the run to (`advanceTo`): may be past `now`.
   * Only views read it; the engines never see it, so how a run is stepped
   * or watched cannot change its result.
   */
  private observedAt = 0;
  private readonly timers = new EngineTimers(this.queue);
  private readonly srcFx: SourceEffects<number> & { park(): void };
  private readonly dstFx: DestinationEffects<number> & { start(cpuState: Uint8Array): void };
  private finished: { outcome: "completed" | "cancelled" | "failed"; reason: string } | null = null;
  private final: Report | null = null;
  private notice: string | null = null;
  private readonly expected: ExpectedMemory;
  private workAtStart = 0;
  private pagesReleased = 0;
  private eventsProcessed = 0;
  /** Kept for the report, so that a saved report can be rerun. */
  private readonly outages: Outage[];
  private readonly maxVirtualMs: number;
  private readonly host: HostProfile | null;
  private readonly standby: StandbyRun;
  private readonly world: SimWorld;

  constructor(cfg: SimConfig) {
    // Huge pages moved whole: the engine and the guests' memory work in huge pages (huge-pages.ts).
    const w = migrationView(cfg.workload);
    this.workload = w;
    this.written = cfg.workload;
    this.options = resolveOptions(cfg.options);
    this.seed = cfg.seed ?? 1;
    if (!Number.isSafeInteger(this.seed)) throw new Error(`seed must be an integer, got ${cfg.seed}`);
    const maxMs = cfg.maxVirtualMs ?? DEFAULT_MAX_VIRTUAL_MS;
    if (!(maxMs > 0)) throw new Error(`maxVirtualMs must be positive, got ${maxMs}`);
    this.startUs = w.warmupMs * 1000;
    this.deadlineUs = this.startUs + maxMs * 1000;
    this.maxVirtualMs = maxMs;
    this.outages = (cfg.outages ?? []).map((o) => ({ atMs: o.atMs, durationMs: o.durationMs }));
    const host = cfg.host ? checkHostProfile(cfg.host, "host profile") : null;
    // Populated memory is the real back end's on base pages only (dest-engine.ts): huge pages install fresh.
    const populated = cfg.destPopulated === true && w.pageSize <= ZERO_HOLE_MAX_PAGE;
    this.host = host !== null && populated ? populatedHost(host) : host;
    // With the fault lane the reader thread asks at once (its cost is in the request's fault_lane_us); otherwise the fault waits for the destination's loop.
    const faultDelayUs = this.host === null || this.host.fault_lane_us !== undefined ? 0 : this.host.fault_delivery_us + loopWaitUs(this.host);
    // Tasks or huge pages: the guest of async-faults.ts (its fault events name task slots, not vCPUs).
    const tasked = cfg.workload.tasks !== undefined || cfg.workload.hugePages !== undefined;
    // Contents are dropped only where the plain guest can do without them (sim-config.ts).
    const content = cfg.trackContent !== false || tasked || cfg.standby !== undefined;
    this.shared = new GuestShared(w, compilePhases(cfg.workload), this.seed, content);
    const onStall = (vcpu: number, page: number, at: number) => this.queue.push(at + faultDelayUs, { type: "fault", vcpu, page, stalledAt: at });
    this.srcGuest = tasked ? new TaskedGuest("source", this.shared, onStall, cfg.workload) : new Guest("source", this.shared, onStall);
    this.dstGuest = tasked ? new TaskedGuest("destination", this.shared, onStall, cfg.workload) : new Guest("destination", this.shared, onStall);
    this.expected = new ExpectedMemory(this.srcGuest, this.dstGuest, content);
    this.progress = new ProgressMeter(w.vcpus, PROGRESS_WINDOW_US);
    this.link = new Link<Msg>(
      cfg.link,
      {
        schedule: (time, ev) => this.queue.push(time, ev),
        transmitted: (dir) => this.drive(dir),
        delivered: (dir, channel, msg, now) => this.onDelivered(dir, channel, msg, now),
      },
      this.options.laneWindowBytes,
    );
    const layout = { pageSize: w.pageSize, pageCount: w.pageCount };
    const storage = cfg.standby === undefined ? null : new SimStandby(cfg.standby, w.pageCount, w.pageSize, DEFAULT_STANDBY.maxInFlight);
    this.source = new Source<number>(
      this.options,
      layout,
      { readPage: (p) => this.srcGuest.readPage(p), collectDirty: () => this.srcGuest.collectDirty() },
      storage === null ? null : DEFAULT_STANDBY,
    );
    this.dest = new Destination<number>(this.options, { expect: layout, standby: storage !== null });
    this.standby = new StandbyRun({ standby: cfg.standby, sourceDiesAtMs: cfg.sourceDiesAtMs }, storage, w.pageCount, {
      queue: this.queue,
      link: this.link,
      source: this.source,
      dest: this.dest,
      sourcePage: (p) => this.srcGuest.memory[p],
      pauseSourceGuest: (now) => {
        if (this.srcGuest.running) this.srcGuest.pause(now);
      },
      stopSourceTimer: () => this.timers.set(0, null, this.now),
      driveSource: () => this.drive(0),
      driveDestination: () => this.drive(1),
      finish: (outcome, reason) => this.finish(outcome, reason),
    });
    const world: SimWorld = {
      clock: () => this.now,
      pageSize: w.pageSize,
      link: this.link,
      queue: this.queue,
      timers: this.timers,
      srcGuest: this.srcGuest,
      dstGuest: this.dstGuest,
      dest: this.dest,
      expected: this.expected,
      host: this.host,
      zeroHoles: w.pageSize <= ZERO_HOLE_MAX_PAGE && !populated,
      standby: this.standby,
      finish: (outcome, reason) => this.finish(outcome, reason),
      releasePages: (count) => {
        this.pagesReleased += count;
      },
    };
    this.world = world;
    this.srcFx = sourceEffects(world);
    this.dstFx = destinationEffects(world);
    this.srcGuest.boot(0);
    this.queue.push(this.startUs, { type: "start" });
    this.queue.push(this.deadlineUs, { type: "deadline" });
    for (const o of cfg.outages ?? []) {
      if (!(o.atMs >= 0 && o.durationMs > 0)) throw new Error(`outage at ${o.atMs} ms for ${o.durationMs} ms: need atMs ≥ 0 and durationMs > 0`);
      this.queue.push(this.startUs + o.atMs * 1000, { type: "linkDown", durationUs: o.durationMs * 1000 });
    }
    this.standby.schedule(this.startUs);
  }

  /** Virtual time since the migration started (negative during warmup), ms. */
  get nowMs(): number {
    return (this.observed - this.startUs) / 1000;
  }

  private get observed(): number {
    return Math.max(this.now, this.observedAt);
  }

  get done(): boolean {
    return this.finished !== null;
  }

  /** Why the source's engine ended (null while it runs), and which guests run: for tests and the standby model. */
  get endState(): { cause: EndCause | null; sourceRunning: boolean; destinationRunning: boolean } {
    return { cause: this.source.metrics.cause, sourceRunning: this.srcGuest.running, destinationRunning: this.dstGuest.running };
  }

  /** Runs until `virtualMs` after the migration start, or until the migration ends. */
  advanceTo(virtualMs: number): void {
    this.run(this.startUs + virtualMs * 1000);
  }

  runToEnd(): Report {
    this.run(Infinity);
    return this.report() as Report;
  }

  /** Asks the source to cancel. Returns null when it accepts, else why it refused. */
  cancel(reason: string): string | null {
    if (this.finished) return `the migration has already ended (${this.finished.outcome})`;
    if (this.now < this.startUs) return "the migration has not started yet";
    const r = this.source.cancel(reason, this.now);
    this.drive(0);
    this.notice = r.ok ? `cancelled: ${reason}` : `cancel refused: ${r.reason}`;
    return r.ok ? null : r.reason;
  }

  /**
   * Ends the simulated run where it stands, outcome
   * "cancelled" — what quitting does past switchover, where a real migration
   * must refuse (the guest lives on the destination) but a simulation need not.
   */
  stop(reason: string): void {
    if (this.finished === null) this.finish("cancelled", reason);
  }

  report(): Report | null {
    return this.final;
  }

  snapshot(): Snapshot {
    return buildSnapshot(this.source.metrics, this.dest.metrics, {
      backend: "sim",
      workload: this.workload.name,
      now: this.observed,
      guestProgress: this.progress.recent(this.observed, this.shared.workUs),
      guestSoFar: this.guestSoFar(),
      report: this.final,
      notice: this.notice,
    });
  }

  /** Each vCPU's progress log from the migration start (so far, or to the end). */
  progressTrace(): ProgressTrace {
    return this.shared.progress.trace(this.observed);
  }

  private guestSoFar(): { utilization: number; workLostVcpuS: number } | undefined {
    const spanUs = this.observed - this.startUs;
    if (spanUs <= 0 || this.final !== null) return undefined;
    const should = spanUs * this.workload.vcpus;
    const lost = Math.max(0, should - (this.shared.workUs - this.workAtStart));
    return { utilization: Math.round((1 - lost / should) * 1e4) / 1e4, workLostVcpuS: Math.round(lost / 100) / 1e4 };
  }

  /** Compares the destination's memory with what it must hold: source memory at switchover plus later writes. */
  verify(): Verification {
    return this.expected.verify(this.workload.pageCount);
  }

  // ------------------------------------------------------------- the loop

  private run(untilUs: number): void {
    while (this.finished === null) {
      const t = this.queue.peekTime();
      if (t > untilUs) break;
      // Guests go first: their accesses up to t happen before the event at t.
      // A stall queues a fault at its own (earlier or equal) time, which then pops first.
      this.srcGuest.runUntil(t);
      this.dstGuest.runUntil(t);
      const event = this.queue.popEvent();
      if (event === undefined) break;
      if (this.queue.poppedTime > this.now) this.now = this.queue.poppedTime;
      this.eventsProcessed++;
      this.dispatch(event);
      this.progress.sample(this.now, this.shared.workUs);
    }
    if (this.finished === null && Number.isFinite(untilUs) && untilUs > this.observed) {
      // The guests' work up to the boundary, for the live view. A stall found
      // on the way queues its fault at its own time, which the next run
      // handles then: the engines' clock never jumps to the boundary.
      this.srcGuest.runUntil(untilUs);
      this.dstGuest.runUntil(untilUs);
      this.observedAt = untilUs;
      this.progress.sample(untilUs, this.shared.workUs);
    }
  }

  private dispatch(ev: SimEvent): void {
    const now = this.now;
    switch (ev.type) {
      case "tx":
      case "room":
      case "deliver":
        this.link.onEvent(ev, now);
        return;
      case "fault":
        if (!this.dstGuest.isStalledOn(ev.vcpu, ev.page, ev.stalledAt)) return;
        // Installed meanwhile: the vCPU would never have stopped.
        if (this.dstGuest.isPresent(ev.page)) this.dstGuest.wake(ev.vcpu, now);
        else {
          this.dest.handle({ kind: "fault", page: ev.page, vcpu: ev.vcpu }, now);
          this.drive(1);
        }
        return;
      case "start":
        this.workAtStart = this.shared.workUs;
        this.shared.progress.start(now);
        this.progress.reset(now, this.shared.workUs);
        this.source.start(now);
        if (this.host !== null) this.srcGuest.setThrottle(withStreaming(this.host, 0, duty(this.world)));
        this.drive(0);
        return;
      case "timer": {
        if (!this.timers.fire(ev)) return;
        if (ev.side === 0) this.source.handleTimeout(now);
        else this.dest.handleTimeout(now);
        this.drive(ev.side);
        return;
      }
      case "sourceParks":
        this.srcFx.park();
        return;
      case "destinationStarts":
        this.dstFx.start(ev.cpuState);
        this.drive(1);
        return;
      case "guestPaused":
        this.source.handle({ kind: "guestPaused", cpuState: ev.cpuState }, now);
        this.drive(0);
        return;
      case "linkDown":
        if (!this.link.isUp) return;
        this.link.goDown(now);
        this.queue.push(now + ev.durationUs, { type: "linkUp" });
        this.source.handle({ kind: "linkDown" }, now);
        this.dest.handle({ kind: "linkDown" }, now);
        this.drive(0);
        this.drive(1);
        return;
      case "linkUp":
        this.link.goUp();
        this.source.handle({ kind: "linkUp" }, now);
        this.dest.handle({ kind: "linkUp" }, now);
        this.drive(0);
        this.drive(1);
        return;
      case "standbyDurable":
      case "holdsReport":
      case "holdsArrive":
      case "standbyRead":
      case "sourceDies":
        return this.standby.onEvent(ev, now);
      case "deadline":
        this.finish("failed", `no end after ${(this.deadlineUs - this.startUs) / 1000} ms of virtual time (maxVirtualMs)`);
        return;
    }
  }

  private readonly messageInput: { kind: "message"; msg: Msg; channel: Channel } = { kind: "message", msg: { type: "resumed" }, channel: "bulk" };

  private onDelivered(dir: Direction, channel: Channel, msg: Msg, now: number): void {
    if (dir === 0) {
      // One input object for every delivery: the engine reads it during `handle` and keeps nothing of it.
      const input = this.messageInput;
      input.msg = msg;
      input.channel = channel;
      this.dest.handle(input, now);
      this.drive(1);
      // Taken in and installed (the drive applied every action, and nothing in the simulated world keeps a message): its arrays may carry the next one.
      if (msg.type === "pages" && this.finished === null) this.source.recycle(msg);
    } else {
      const served = this.standby.diedAt === null ? laneServe(this.world, channel, msg, this.workload.pageCount) : null;
      this.source.handle(served ?? { kind: "message", msg }, now);
      this.drive(0);
    }
  }

  /** Runs one side's engine loop (0: source, 1: destination) at the current time. */
  private drive(side: Direction): void {
    if (this.finished !== null) return;
    if (side === 0 && this.standby.diedAt !== null) return;
    if (side === 0) driveSource(this.source, this.srcFx, this.now);
    else driveDestination(this.dest, this.dstFx, this.now);
  }

  private finish(outcome: "completed" | "cancelled" | "failed", reason: string): void {
    if (this.finished) return;
    this.finished = { outcome, reason };
    this.final = simReport({
      outcome, reason, now: this.now, startUs: this.startUs, src: this.source.metrics, dest: this.dest.metrics, shared: this.shared, expected: this.expected,
      link: this.link, standby: this.standby, host: this.host, workload: this.workload, written: this.written, seed: this.seed, options: this.options,
      outages: this.outages, maxVirtualMs: this.maxVirtualMs, events: this.eventsProcessed, pagesReleased: this.pagesReleased,
    });
    this.notice = `${outcome}${reason ? `: ${reason}` : ""}`;
  }
}

export function simulate(cfg: SimConfig): Report {
  return new Simulation(cfg).runToEnd();
}
