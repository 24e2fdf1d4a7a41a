/**
 * One incoming migration at the destination: its two connections (replaced
 * as a pair when the source reconnects with a higher epoch) and, in
 * post-copy once its guest runs, the source's extra bulk connections (issue
 * 9: pages only, installed and booked like bulk 0's) and the fault lane
 * (dest-lane-slot.ts). The frames they carry go to the engine side
 * (dest-engine.ts: the Destination engine, the guest spawned when the hello
 * arrives, its memory and faults). After completion the guest runs its
 * remaining steps; the session then hashes guest RAM and sends the source a
 * final report (dest-reports.ts).
 */
import type { DestinationInput } from "../engine/events.js";
import { ErrorCode, type Channel, type HelloMsg, type Message } from "../engine/messages.js";
import { messageOf } from "./errors.js";
import { parseSessionInfo, type SessionInfo } from "./plan.js";
import type { DestReport } from "./report-msg.js";
import type { PreallocPool } from "./dest-prealloc.js";
import { nativeDataPlaneWanted, plainSocketFd, stopNodeReading, type InstallMode } from "./dataplane.js";
import { NativeBulkConn } from "./dataplane-recv.js";
import { DestEngine } from "./dest-engine.js";
import { DestReports } from "./dest-reports.js";
import { DEFAULT_STALL_MS, FramedSocket, type Accepted, type FramedHandlers } from "./transport.js";
import { DestFaultTrace, faultTraceDir } from "./fault-trace.js";
import { BookingQueue } from "./dest-booking.js";
import { DestLaneSlot } from "./dest-lane-slot.js";
import { raiseForSwitchover } from "./loop-priority.js";
import { nowUs } from "./clock.js";
import { stamp } from "./switchover-stamps.js";

/** A connection of the session: Node's (urgent, and bulk with TLS) or the native data plane's (bulk over plain TCP). */
type Conn = FramedSocket | NativeBulkConn;

/** Bulk messages the destination handles per event-loop turn (chosen with 16-page frames: ~2 ms of installing in all; 4 halves fault latency again but also the throughput). */
export const BULK_SLICE = 32;

export interface SessionOptions {
  /** How long a broken link may stay down before the migration is given up. */
  reconnectWaitMs: number;
  log: (line: string) => void;
  /** Issue 16: where sources keep standby copies (DIR/<session id>/): a dead source's missing pages come from there. */
  standbyDir?: string;
  /** How the native bulk receivers install pages (dataplane.ts; default PPSIM_INSTALL, else copy). */
  install?: InstallMode;
  /** Guest memory populated ahead (dest-prealloc.ts): the guest takes it when its size matches. */
  prealloc?: PreallocPool;
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
  /** The engine, the guest and its memory (dest-engine.ts). */
  private readonly eng: DestEngine;
  private queued: [Message<Uint8Array>, Channel][] | null = null;
  /** Ends this session's SCHED_RR window on the loop, if open (PPSIM_SWITCHOVER_RR, loop-priority.ts). */
  private closeWindow: () => void = () => {};
  private windowOpened = false;
  private readonly reports: DestReports;
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
      now: () => ({ engine: this.eng.engine, guest: this.eng.guest, epoch: this.epoch, urgentUp: this.conns.urgent !== undefined, bulk: this.conns.bulk, extras: this.extras }),
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
        guest: () => this.eng.guest,
        memory: () => this.eng.mem,
      },
      this.trace,
    );
    this.eng = new DestEngine(
      {
        id,
        log: (line) => this.o.log(`${this.tag}: ${line}`),
        ended: () => this.ended,
        send: (channel, msg) => this.send(channel, msg),
        buffered: (channel) => this.conns[channel]?.buffered ?? Infinity,
        nativeBulk0: () => (this.conns.bulk instanceof NativeBulkConn ? this.conns.bulk : null),
        nativeBulks: () => [this.conns.bulk, ...this.extras].filter((b): b is NativeBulkConn => b instanceof NativeBulkConn),
        layout: () => ({ pageSize: this.pageSize, pageCount: this.pageCount }),
        lane: this.lane,
        reports: this.reports,
        trace: this.trace,
        finish: (end) => this.finish(end),
        refuse: (reason, code) => this.refuse(reason, code),
        endSwitchoverWindow: () => this.closeWindow(),
      },
      o,
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
      if (this.conns[channel] === fs) this.eng.drive();
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
    if (!this.eng.running || this.pageSize === 0) {
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
    // Huge pages (hugetlbfs) too: the receiver installs them with UFFDIO_COPY only, before the guest runs as well (page_install.h).
    if (this.info === null) return null;
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
    const { guest: g, mem } = this.eng;
    if (g !== null && mem !== null) {
      c.setTarget(g.memfd, g.uffd, g.layout.base, mem.pageSize, mem.pageCount, mem.table, mem.holes);
      if (mem.running) c.setRunning();
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
    const engine = this.eng.engine;
    if (engine === null || engine.finished) {
      if (!this.ended && engine?.finished !== true) this.finish({ outcome: "failed", reason: `${reason} (during setup)` });
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
    if (this.eng.engine !== null) {
      if (this.trace !== null && m.type === "pages") this.trace.arrived(m.pages, channel);
      if (m.type === "switchover" && this.reports.frameAt === null) {
        this.reports.frameAt = nowUs();
        stamp("d.frame_at_session");
        // Pre-copy, hybrid: the window from the frame (until then this loop installs the rounds' pages).
        if (!this.windowOpened) this.openWindow();
      }
      return this.dispatch({ kind: "message", msg: m, channel });
    }
    if (m.type !== "hello") return this.refuse(`expected a hello first, got ${m.type}`);
    // PPSIM_SWITCHOVER_RR: this loop in SCHED_RR until its guest's RESUME is answered (loop-priority.ts);
    // from here in post-copy, where the switchover follows the handshake and nothing else runs before it.
    if (m.mode === "postcopy") this.openWindow();
    this.queued = [];
    void this.setup(m).then(() => {
      const q = this.queued ?? [];
      this.queued = null;
      for (const [msg, ch] of q) this.dispatch({ kind: "message", msg, channel: ch });
    });
  }

  /** Once per session: a window that ended (its RESUME, or its time cap) is not opened again by a later frame. */
  private openWindow(): void {
    this.windowOpened = true;
    this.closeWindow = raiseForSwitchover(this.o.log);
  }

  /** The hello arrived: the engine side starts (dest-engine.ts), then the engine answers it. */
  private async setup(h: HelloMsg): Promise<void> {
    if (!(await this.eng.start(h, this.info))) return;
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

  private dispatch(ev: DestinationInput<Uint8Array>): void {
    this.eng.dispatch(ev);
  }

  /** Ends the session: connections, fault reader and guest. */
  finish(end: SessionEnd): void {
    if (this.ended) return;
    this.ended = true;
    this.closeWindow();
    this.reports.stop();
    this.eng.clearTimer();
    const traced = this.trace?.finish();
    if (traced != null) this.o.log(`${this.tag}: fault trace in ${traced}`);
    if (end.outcome !== "completed") this.o.log(`${this.tag}: ${end.outcome}: ${end.reason}`);
    this.eng.stopFaults();
    this.lane.close();
    this.eng.closeMemory();
    // Let a last error frame leave before the sockets go.
    setTimeout(() => {
      this.conns.urgent?.close();
      this.conns.bulk?.close();
      for (const x of this.extras) x?.close();
    }, 100).unref();
    void this.eng.quitGuest().finally(() => this.resolveEnd(end));
  }
}
