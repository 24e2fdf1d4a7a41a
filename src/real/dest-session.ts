/**
 * One incoming migration at the destination: its two connections (replaced
 * as a pair when the source reconnects with a higher epoch) and, in
 * post-copy once its guest runs, the source's extra bulk connections (issue
 * 9: pages only, installed and booked like bulk 0's), its guest
 * (spawned when the hello arrives, with the layout and workload the source
 * named), and a Destination engine driven by frames and by the guest's
 * faults (on the fault lane once the guest runs: dest-lane-slot.ts). After
 * completion the guest runs its remaining steps; the session then hashes
 * guest RAM and sends the source a final report.
 */
import { Destination } from "../engine/destination.js";
import { driveDestination, type DestinationEffects } from "../engine/drive.js";
import type { DestinationInput } from "../engine/events.js";
import { ErrorCode, MIN_PROTOCOL_VERSION, type Channel, type HelloMsg, type Message } from "../engine/messages.js";
import { resolveOptions } from "../engine/options.js";
import { DeadlineTimer, nowUs } from "./clock.js";
import { DestinationMemory } from "./dest-memory.js";
import { messageOf } from "./errors.js";
import { migrationPageSize } from "./huge-reserve.js";
import { GuestProcess } from "./guest-process.js";
import { raiseForSwitchover } from "./loop-priority.js";
import { constants } from "./native.js";
import { parseSessionInfo, type SessionInfo } from "./plan.js";
import type { DestReport } from "./report-msg.js";
import { installModeFromEnv, nativeDataPlaneWanted, plainSocketFd, stopNodeReading, type InstallMode } from "./dataplane.js";
import { NativeBulkConn } from "./dataplane-recv.js";
import { DestReports } from "./dest-reports.js";
import { fillFromStandby } from "./dest-standby-fill.js";
import { DEFAULT_STALL_MS, FramedSocket, type Accepted, type FramedHandlers } from "./transport.js";
import { DestFaultTrace, faultTraceDir } from "./fault-trace.js";
import { BookingQueue } from "./dest-booking.js";
import { DestLaneSlot } from "./dest-lane-slot.js";
import { monoUs } from "./fault-trace-clock.js";

/** A connection of the session: Node's (urgent, and bulk with TLS) or the native data plane's (bulk over plain TCP). */
type Conn = FramedSocket | NativeBulkConn;

/** Bulk messages the destination handles per event-loop turn (16-page frames: ~2 ms of installing in all; 4 halves fault latency again but also the throughput). */
const BULK_SLICE = 32;

export interface SessionOptions {
  /** How long a broken link may stay down before the migration is given up. */
  reconnectWaitMs: number;
  log: (line: string) => void;
  /** Issue 16: where sources keep standby copies (DIR/<session id>/): a dead source's missing pages come from there. */
  standbyDir?: string;
  /** How the native bulk receivers install pages (dataplane.ts; default PPSIM_INSTALL, else copy). */
  install?: InstallMode;
}

export interface SessionEnd {
  outcome: "completed" | "cancelled" | "failed";
  reason: string;
}

export class DestSession {
  private info: SessionInfo | null = null;
  private epoch = 0;
  private conns: Partial<Record<Channel, Conn>> = {};
  /** This epoch's bulk connections 1 … (index - 1), once the guest runs. */
  private extras: Conn[] = [];
  /** This epoch's fault lane (dest-lane-slot.ts). */
  private readonly lane: DestLaneSlot;
  private everUp = false;
  private pageSize = 0;
  /** Issue 15: with pageSize, bounds what each frame may carry (FrameDecoder.setLayout). */
  private pageCount = 0;
  private engine: Destination<Uint8Array> | null = null;
  private guest: GuestProcess | null = null;
  private mem: DestinationMemory | null = null;
  private queued: [Message<Uint8Array>, Channel][] | null = null;
  /** Ends this session's SCHED_RR window on the loop, if open (PPSIM_SWITCHOVER_RR, loop-priority.ts). */
  private closeWindow: () => void = () => {};
  private readonly reports: DestReports;
  private readonly engineTimer = new DeadlineTimer((now) => {
    this.engine?.handleTimeout(now);
    this.drive();
  });
  private fx: DestinationEffects<Uint8Array> | null = null;
  private ended = false;
  /** PPSIM_FAULT_TRACE: each fault's stamps (fault-trace.ts); null when off. */
  private trace: DestFaultTrace | null = null;
  private resolveEnd: (e: SessionEnd) => void = () => undefined;
  readonly end: Promise<SessionEnd>;

  constructor(
    readonly id: string,
    private readonly o: SessionOptions,
  ) {
    this.end = new Promise((r) => (this.resolveEnd = r));
    const traceDir = faultTraceDir();
    if (traceDir !== null) this.trace = new DestFaultTrace(traceDir, id);
    this.reports = new DestReports({
      id,
      now: () => ({ engine: this.engine, guest: this.guest, epoch: this.epoch, urgentUp: this.conns.urgent !== undefined, bulk: this.conns.bulk, extras: this.extras }),
      log: (line) => this.o.log(`${this.tag}: ${line}`),
      sendReport: (r) => this.sendReport(r),
      finish: (end) => this.finish(end),
    });
    this.lane = new DestLaneSlot(
      {
        log: (line) => this.o.log(`${this.tag}: ${line}`),
        dispatch: (ev) => this.dispatch(ev),
        ended: () => this.ended,
        linkFailed: (reason) => this.linkFailed(reason),
        guest: () => this.guest,
        memory: () => this.mem,
      },
      this.trace,
    );
  }

  private get tag(): string {
    return `session ${this.id.slice(0, 8)}`;
  }

  attach(a: Accepted): void {
    const { channel, epoch, info } = a.preamble;
    if (a.preamble.lane === true) {
      // The lane follows the epoch's urgent and bulk connections.
      if (a.preamble.epoch !== this.epoch || this.ended) a.socket.destroy();
      else this.lane.attach(a, this.epoch);
      return;
    }
    if ((a.preamble.stream ?? 0) > 0) return this.attachExtra(a);
    if (epoch < this.epoch || this.ended) {
      a.socket.destroy();
      return;
    }
    if (info !== "" && this.info === null) {
      try {
        this.info = parseSessionInfo(info);
      } catch (e) {
        this.o.log(`${this.tag}: ${messageOf(e)}`);
      }
    }
    if (epoch > this.epoch) {
      this.linkDown(`the source reconnected (epoch ${epoch})`);
      this.epoch = epoch;
    }
    this.conns[channel]?.close();
    const fs = this.open(a, channel);
    a.socket.on("drain", () => {
      if (this.conns[channel] === fs) this.drive();
    });
    this.conns[channel] = fs;
    const { urgent, bulk } = this.conns;
    if (urgent === undefined || bulk === undefined) return;
    urgent.start();
    bulk.start();
    for (const x of this.extras) x?.start();
    if (this.everUp) {
      this.o.log(`${this.tag}: link re-established (epoch ${epoch})`);
      this.dispatch({ kind: "linkUp" });
    }
    this.everUp = true;
  }

  /**
   * A bulk connection beyond the first (its preamble's stream > 0): the
   * source opens them once we confirmed the switchover, so before our guest
   * runs one is refused (the order of frames on bulk 0 still matters then).
   * Its failure is the link's, like any other connection's.
   */
  private attachExtra(a: Accepted): void {
    const { epoch } = a.preamble;
    const index = a.preamble.stream ?? 0;
    if (epoch < this.epoch || this.ended) {
      a.socket.destroy();
      return;
    }
    if (this.mem?.running !== true || this.pageSize === 0) {
      this.o.log(`${this.tag}: bulk connection ${index} refused: the guest does not run yet (extra bulk connections carry post-copy pages only)`);
      a.socket.destroy();
      return;
    }
    if (epoch > this.epoch) {
      this.linkDown(`the source reconnected (epoch ${epoch})`);
      this.epoch = epoch;
    }
    this.extras[index - 1]?.close();
    const fs = this.open(a, "bulk");
    this.extras[index - 1] = fs;
    if (epoch === 0 && index === 1) this.o.log(`${this.tag}: pages over several bulk connections from now on`);
    if (this.conns.urgent !== undefined && this.conns.bulk !== undefined) fs.start();
  }

  /** One of the session's connections, over the native receiver when it can be, else Node's socket. */
  private open(a: Accepted, channel: Channel): Conn {
    const handlers: FramedHandlers = {
      message: (m) => this.onMessage(m, channel, fs),
      malformed: (r) => this.onMalformed(r, fs),
      down: (r) => this.onDown(r, fs),
    };
    const fs: Conn = this.nativeBulk(a, handlers) ?? new FramedSocket(a.socket, channel, this.pageSize, handlers, a.rest, a.framing); // a.framing bounds stalls mid-frame
    if (this.pageSize > 0) fs.setLayout(this.pageSize, this.pageCount); // a reconnection's frames are bounded too
    // Bulk pages a few frames per turn (JS path): a page reply on the urgent
    // channel or a fault never waits for more than that much installing.
    if (fs instanceof FramedSocket && channel === "bulk") fs.setSlice(BULK_SLICE);
    return fs;
  }

  /** Whether `fs` is one of this epoch's connections. */
  private isCurrent(fs: Conn): boolean {
    return this.conns[fs.channel] === fs || this.extras.includes(fs);
  }

  /** The bulk connection over the native receiver, when it can be (plain TCP; docs/real.md "Data plane"); else null. */
  private nativeBulk(a: Accepted, direct: FramedHandlers): NativeBulkConn | null {
    if (a.preamble.channel !== "bulk" || a.identity !== "insecure" || !nativeDataPlaneWanted()) return null;
    // Huge pages (hugetlbfs) stay on the JS path: installs there are UFFDIO_COPY only (dest-memory.ts).
    const host = constants().PAGE_SIZE;
    if (this.info === null || migrationPageSize(this.info.config, host) !== host) return null;
    const fd = plainSocketFd(a.socket);
    if (fd < 0 || !stopNodeReading(a.socket)) return null;
    if (a.preamble.epoch === 0 && (a.preamble.stream ?? 0) === 0) this.o.log(`${this.tag}: bulk connection over the native receiver (it installs pages itself)`);
    // Its installed pages are booked a slice per turn (dest-booking.ts); what waits is booked before the connection's end.
    const q = new BookingQueue(direct.message);
    const handlers: FramedHandlers = {
      message: (m) => q.push(m),
      malformed: (r) => {
        q.flush();
        direct.malformed?.(r);
      },
      down: (r) => {
        q.flush();
        direct.down(r);
      },
    };
    const c = new NativeBulkConn(a.socket, fd, this.pageSize, this.pageCount, handlers, a.rest, a.framing?.stallMs ?? DEFAULT_STALL_MS, (l) => this.o.log(`${this.tag}: ${l}`));
    const g = this.guest;
    if (g !== null && this.mem !== null) {
      c.setTarget(g.memfd, g.uffd, g.layout.base, this.mem.pageSize, this.mem.pageCount, this.mem.table);
      if (this.mem.running) c.setRunning();
    }
    return c;
  }

  // ------------------------------------------------------------------ link

  private onDown(reason: string, fs: Conn): void {
    if (!this.isCurrent(fs)) return;
    this.linkFailed(reason);
  }

  private linkFailed(reason: string): void {
    if (this.reports.reported) return this.finish({ outcome: "completed", reason: "report delivered" });
    this.o.log(`${this.tag}: link down: ${reason}`);
    this.linkDown(reason);
    if (this.engine === null || this.engine.finished) {
      if (!this.ended && this.engine?.finished !== true) this.finish({ outcome: "failed", reason: `${reason} (during setup)` });
    }
    // Otherwise the engine's reconnect deadline decides.
  }

  /** The source's bytes did not decode: the engine hears it as such; the connection is gone, so the link is down too. */
  private onMalformed(reason: string, fs: Conn): void {
    if (!this.isCurrent(fs)) return;
    this.o.log(`${this.tag}: ${reason}`);
    this.dispatch({ kind: "malformed", reason });
    this.onDown(reason, fs);
  }

  private linkDown(_reason: string): void {
    const wasUp = this.conns.urgent !== undefined && this.conns.bulk !== undefined;
    this.conns.urgent?.close();
    this.conns.bulk?.close();
    for (const x of this.extras) x?.close();
    this.conns = {};
    this.extras = [];
    if (wasUp && this.everUp) this.dispatch({ kind: "linkDown" });
    // After linkDown: a fault the lane took but JS had not heard of yet is booked, to be asked again at recovery.
    this.lane.close();
  }

  private send(channel: Channel, msg: Message<Uint8Array>): void {
    this.conns[channel]?.send(msg, this.pageSize);
  }

  /** Whether it was written (the urgent connection is up). */
  private sendReport(r: DestReport): boolean {
    if (this.conns.urgent === undefined) return false;
    this.send("urgent", { type: "report", json: JSON.stringify(r) });
    return true;
  }

  // --------------------------------------------------------------- messages

  private onMessage(m: Message<Uint8Array>, channel: Channel, fs: Conn): void {
    if (!this.isCurrent(fs) || this.ended) return;
    if (this.queued !== null) {
      this.queued.push([m, channel]);
      return;
    }
    if (this.engine !== null) {
      if (this.trace !== null && m.type === "pages") this.trace.arrived(m.pages, channel);
      if (m.type === "switchover" && this.reports.frameAt === null) this.reports.frameAt = nowUs();
      return this.dispatch({ kind: "message", msg: m, channel });
    }
    if (m.type !== "hello") return this.refuse(`expected a hello first, got ${m.type}`);
    // PPSIM_SWITCHOVER_RR: this loop in SCHED_RR until its guest's RESUME is answered (loop-priority.ts).
    this.closeWindow = raiseForSwitchover(this.o.log);
    this.queued = [];
    void this.setup(m).then(() => {
      const q = this.queued ?? [];
      this.queued = null;
      for (const [msg, ch] of q) this.dispatch({ kind: "message", msg, channel: ch });
    });
  }

  /** Spawns the guest the hello describes (unless the engine will refuse it anyway), then lets the engine answer. */
  private async setup(h: HelloMsg): Promise<void> {
    const info = this.info;
    const opts = resolveOptions({ mode: h.mode, reconnectTimeoutMs: this.o.reconnectWaitMs });
    if (info === null) return this.refuse("the source sent no session info (workload, seed, steps)");
    const mem = /^mem_bytes (\d+)$/m.exec(info.config);
    const unit = migrationPageSize(info.config, constants().PAGE_SIZE); // huge pages on hugetlbfs
    const expect = { pageSize: unit, pageCount: mem === null ? 0 : Number(mem[1]) / unit };
    this.engine = new Destination<Uint8Array>(opts, { expect, standby: this.o.standbyDir !== undefined });
    const acceptable = h.version >= MIN_PROTOCOL_VERSION && h.pageSize === expect.pageSize && h.pageCount === expect.pageCount;
    if (acceptable) {
      this.o.log(`${this.tag}: ${info.workload}, ${h.pageCount} pages of ${h.pageSize} bytes, ${h.mode}: starting the destination guest`);
      try {
        // Install mode "continue" only where the native receiver installs (plain TCP, base pages): the guest runs registered MINOR too.
        const install = unit === constants().PAGE_SIZE && this.conns.bulk instanceof NativeBulkConn ? (this.o.install ?? installModeFromEnv()) : "copy";
        this.guest = await GuestProcess.spawn({ role: "destination", config: info.config, steps: info.steps, minor: install === "continue" });
        this.mem = new DestinationMemory(this.guest, install);
        if (install === "continue") this.o.log(`${this.tag}: install mode continue: pages written into the page cache, mapped with UFFDIO_CONTINUE`);
        const g = this.guest;
        const b = this.conns.bulk;
        if (b instanceof NativeBulkConn) b.setTarget(g.memfd, g.uffd, g.layout.base, this.mem.pageSize, this.mem.pageCount, this.mem.table);
        this.lane.aim();
        this.mem.startFaults(
          (page, tid, readUs) => {
            this.trace?.fault(page, readUs);
            // The fault's time is the reader's (as on the lane): its latency counts from there either way.
            this.dispatch({ kind: "fault", page, vcpu: tid, at: readUs + (nowUs() - monoUs()) });
          },
          (err) => this.finish({ outcome: "failed", reason: `the fault reader stopped: ${err.message}` }),
        );
      } catch (e) {
        return this.refuse(`the destination cannot start its guest: ${messageOf(e)}`, ErrorCode.BadLayout);
      }
    }
    this.pageSize = h.pageSize;
    this.pageCount = h.pageCount;
    for (const c of Object.values(this.conns)) c.setLayout(h.pageSize, h.pageCount); // from here on, frames are bounded by the accepted layout
    this.dispatch({ kind: "message", msg: h, channel: "bulk" });
  }

  private refuse(reason: string, code: number = ErrorCode.Protocol): void {
    this.o.log(`${this.tag}: refused: ${reason}`);
    this.send("bulk", { type: "error", code, reason });
    this.finish({ outcome: "failed", reason });
  }

  // ----------------------------------------------------------------- engine

  private dispatch(ev: DestinationInput<Uint8Array>): void {
    if (this.engine === null || this.ended) return;
    this.engine.handle(ev, nowUs());
    this.drive();
  }

  /** The engine's shared loop with this session's effects (see driveDestination). */
  private drive(): void {
    const engine = this.engine;
    if (engine === null || this.ended) return;
    this.fx ??= this.effects();
    try {
      driveDestination(engine, this.fx, nowUs());
    } catch (e) {
      this.finish({ outcome: "failed", reason: `acting on guest memory failed: ${messageOf(e)}` });
    }
  }

  private effects(): DestinationEffects<Uint8Array> {
    return {
      // A small message waits behind at most what this process still holds unwritten.
      canSend: (channel) => (this.conns[channel]?.buffered ?? Infinity) < 64 * 1024,
      send: (channel, msg) => {
        msg = this.lane.announce(msg);
        this.send(channel, msg);
        if (this.trace !== null && msg.type === "pageRequest") this.trace.requested(msg.page);
      },
      setTimer: (at) => this.engineTimer.set(at),
      installPages: (batch) => {
        // Bulk pages the native receiver installed already (dataplane-recv.ts): the engine only books them.
        if (!batch.preinstalled) this.mem?.installMany(batch);
        this.trace?.installed(batch.pages);
      },
      wake: (page) => this.mem?.wake(page),
      dropPages: (pages) => this.mem?.drop(pages),
      resumeGuest: (cpuState) => this.resume(cpuState),
      stopFaultHandling: () => this.mem?.stopFaults(),
      standbyRecover: (missing) => void this.fillFromStandby(missing),
      finished: (end) => {
        if (this.engine?.standbyFill != null) this.o.log(`${this.tag}: ${end.reason}`);
        if (end.outcome === "completed") void this.reports.afterComplete();
        else this.finish({ outcome: end.outcome, reason: end.reason });
      },
    };
  }

  private resume(cpuState: Uint8Array): void {
    const g = this.guest;
    if (g === null || this.mem === null) return;
    this.reports.switchoverAt = nowUs();
    this.mem.guestMayRun();
    this.lane.arm();
    for (const b of [this.conns.bulk, ...this.extras]) if (b instanceof NativeBulkConn) b.setRunning();
    // Not startingVcpus, and no renice pass after it: each new vCPU thread lowers its own priority after
    // its first step (ppsim-guest), and a /proc pass here could lower one that has not taken it yet —
    // a vCPU at nice 19 waited milliseconds for a core, inside the guest's downtime.
    g.resume(cpuState).then(
      async () => {
        this.reports.resumedAt = nowUs();
        this.closeWindow();
        this.o.log(`${this.tag}: destination guest running`);
        // Only now may the source learn it: until then it can still take the VM back.
        this.dispatch({ kind: "guestResumed" });
        await this.reports.startProgress(g);
      },
      async (e: unknown) => {
        this.closeWindow();
        // The source resumes its own guest on our word: make sure ours cannot run first.
        this.mem?.stopFaults();
        g.close();
        await g.exited;
        this.dispatch({ kind: "resumeFailed", reason: `resuming the destination guest failed: ${messageOf(e)}` });
      },
    );
  }

  /** The source is gone: the engine's missing pages from the standby copy (dest-standby-fill.ts). */
  private fillFromStandby(missing: Uint32Array): Promise<void> {
    const layout = { pageSize: this.pageSize, pageCount: this.pageCount };
    const log = (line: string): void => this.o.log(`${this.tag}: ${line}`);
    return fillFromStandby({ dir: this.o.standbyDir as string, sessionId: this.id, layout, log, dispatch: (ev) => this.dispatch(ev) }, missing);
  }

  /** Ends the session: connections, fault reader and guest. */
  finish(end: SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.closeWindow();
    this.reports.stop();
    this.engineTimer.clear();
    const traced = this.trace?.finish();
    if (traced != null) this.o.log(`${this.tag}: fault trace in ${traced}`);
    if (end.outcome !== "completed") this.o.log(`${this.tag}: ${end.outcome}: ${end.reason}`);
    this.mem?.stopFaults();
    this.lane.close();
    this.mem?.close();
    // Let a last error frame leave before the sockets go.
    setTimeout(() => {
      this.conns.urgent?.close();
      this.conns.bulk?.close();
      for (const x of this.extras) x?.close();
    }, 100).unref();
    const g = this.guest;
    void (g === null ? Promise.resolve() : g.quit()).finally(() => this.resolveEnd(end));
  }
}
