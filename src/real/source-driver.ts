/**
 * Drives a Source engine for real, through the engine's shared loop
 * (driveSource) with real effects: a lane has room while its socket has
 * nothing waiting in this process (the kernel send buffer, bounded to the
 * engine's lane window, is the window), guest control goes to the guest
 * process, timers are Node timers on the wall clock. The loop runs after
 * every input and whenever a socket drains.
 *
 * A failed link is recovered only once the source is committed (past
 * switchover): before that the engine abandons the migration and the source
 * guest runs on. The destination's `report` messages (progress, final) are
 * for this driver, not the engine.
 */
import { driveSource, type SourceEffects } from "../engine/drive.js";
import { EndCause, type Ending } from "../engine/events.js";
import type { Channel, Message } from "../engine/messages.js";
import { emptyDestinationMetrics, type DestinationMetrics } from "../engine/metrics.js";
import type { MigrationOptions } from "../engine/options.js";
import { Source } from "../engine/source.js";
import { DeadlineTimer, nowUs } from "./clock.js";
import { messageOf } from "./errors.js";
import type { GuestProcess } from "./guest-process.js";
import { raiseForSwitchover } from "./loop-priority.js";
import { punchHole } from "./native.js";
import { sanitize } from "./peer-text.js";
import { parseDestReport, type FinalReport } from "./report-msg.js";
import type { SourceLink } from "./source-link.js";
import { SourceMemoryPort } from "./source-port.js";
import { ReleaseLog } from "./source-release.js";
import { faultTraceDir, SourceFaultTrace } from "./fault-trace.js";
import { REAL_STANDBY, type SourceStandby } from "./standby-source.js";
import { stamp, stampRole } from "./switchover-stamps.js";
import { rehearsalWanted, rehearseSwitchover } from "./switchover-rehearsal.js";
import { ThreadCpuAccount } from "./thread-cpu.js";
import type { StandbyOp } from "../engine/standby.js";

/** PPSIM_SWITCHOVER_HOLD=0: background pages follow the switchover frame at once, as before (A/B). */
function switchoverHoldWanted(): boolean {
  return process.env.PPSIM_SWITCHOVER_HOLD !== "0";
}

export interface DriverEnd {
  outcome: "completed" | "cancelled" | "failed";
  reason: string;
}

export interface SourceDriverOptions {
  /** Tests and demos: break the link once this many bulk bytes went out after switchover. */
  breakLinkAfterPostcopyBytes?: number;
  log: (line: string) => void;
  /** Issue 16: the standby copy this source keeps (its writes hook in at the engine's standby operations). */
  standby?: SourceStandby;
}

/**
 * Bytes one run of the loop may write before it yields to the event loop
 * (and so to the urgent socket's page requests), even if the kernel keeps
 * taking them. 64 KiB: fault p50 443–528 µs against 512–1152 µs with 256 KiB,
 * background throughput unchanged (1 GiB post-copy on loopback, docs/engine.md).
 */
const BYTES_PER_TURN = 64 * 1024;
/** With the native sender a pull costs JS a few µs, not a copy: the senders' queue bounds are the limit (this per connection). */
const NATIVE_BYTES_PER_TURN = 1024 * 1024;
/** The longest the background stream waits for the destination's guest to run after the switchover (holdBulk). */
const SWITCHOVER_HOLD_MS = 50;

export class SourceDriver {
  readonly engine: Source<Uint8Array>;
  /** The destination's metrics as last reported (progress reports, then the final one). */
  remote: DestinationMetrics = emptyDestinationMetrics();
  remoteSteps: { at: number; steps: number } | null = null;
  /** µs on this clock: the source guest paused, the switchover handed to the link; the destination's arrival and resume (its clock). */
  readonly switchoverTimes: { pausedAt: number | null; engineUs: number | null; sentAt: number | null; frameAt: number | null; arrivedAt: number | null; resumedAt: number | null } = { pausedAt: null, engineUs: null, sentAt: null, frameAt: null, arrivedAt: null, resumedAt: null };
  notice: string | null = null;
  final: FinalReport | null = null;
  private readonly port: SourceMemoryPort;
  /** Post-copy and hybrid: background pages after the switchover may use several bulk connections. */
  private readonly spreads: boolean;
  /** Committed bulk frames until the destination installed them; then their pages are punched (source-release.ts). */
  readonly release: ReleaseLog;
  private protectionNoted = false;
  /**
   * Where this host's CPU went (issue 9): this agent's and its guest's
   * threads at the engine's start, just before the PAUSE is asked (the
   * guest still runs: not in the downtime) and at the end. A mark reads
   * /proc for every thread (well under a millisecond, timed in
   * docs/real-benchmarks.md); none falls inside the downtime.
   */
  readonly cpu: ThreadCpuAccount;
  /** PPSIM_FAULT_TRACE: each page request's arrival and reply (fault-trace.ts); null when off. */
  private readonly trace: SourceFaultTrace | null;
  private readonly fx: SourceEffects<Uint8Array>;
  private readonly timer = new DeadlineTimer((now) => {
    this.engine.handleTimeout(now);
    this.drive();
  });
  private budget = 0;
  private again = false;
  /**
   * Post-copy and hybrid: from the switchover frame until the destination's
   * guest runs (its `resumed`, or a recovery), no background page is pulled
   * (docs/real.md "Downtime"): nothing on bulk is needed before the guest
   * runs, and streaming them kept the source's loop, its sender threads and
   * the destination's receivers busy on the 2 cores that the switchover's
   * hops and the guest's RESUME wait for. Bounded: background resumes after
   * SWITCHOVER_HOLD_MS whatever the destination says.
   */
  private holdBulk = false;
  /** Ends the switchover's SCHED_RR window on this loop, if one is open (loop-priority.ts). */
  private closeWindow: () => void = () => {};
  private holdTimer: NodeJS.Timeout | undefined;
  private linkReason: string | null = null;
  private broken = false;
  private end: DriverEnd | null = null;
  private resolveEnd: (e: DriverEnd) => void = () => undefined;
  private resolveFinal: (f: FinalReport | string) => void = () => undefined;
  readonly ended: Promise<DriverEnd>;
  /** The destination's final report, or why it will not come. */
  readonly finalReport: Promise<FinalReport | string>;

  constructor(
    private readonly guest: GuestProcess,
    private readonly link: SourceLink,
    opts: MigrationOptions,
    private readonly dopts: SourceDriverOptions,
  ) {
    const { pageSize, memBytes } = guest.layout;
    this.port = new SourceMemoryPort(guest, opts.mode !== "postcopy", link.nativeBulk);
    this.spreads = opts.mode !== "precopy";
    const sb = dopts.standby;
    this.engine = new Source<Uint8Array>(opts, { pageSize, pageCount: memBytes / pageSize }, this.port, sb === undefined ? null : REAL_STANDBY);
    this.release = new ReleaseLog(guest.memfd, pageSize, (pages) => link.releasing(pages));
    this.cpu = new ThreadCpuAccount([
      { process: "source agent", pid: process.pid, guest: false },
      { process: "source guest", pid: guest.layout.pid, guest: true },
    ]);
    if (sb !== undefined) {
      sb.onWritten = (seq) => {
        this.engine.handle({ kind: "standbyWritten", seq }, nowUs());
        this.noteProtection();
        this.drive();
      };
    }
    const traceDir = faultTraceDir();
    this.trace = traceDir === null ? null : new SourceFaultTrace(traceDir, link.session);
    this.fx = this.effects();
    // The switchover's engine code compiled and warm before the pause, not inside it (switchover-rehearsal.ts).
    if (rehearsalWanted()) rehearseSwitchover(opts, pageSize);
    this.ended = new Promise((r) => (this.resolveEnd = r));
    this.finalReport = new Promise((r) => (this.resolveFinal = r));
  }

  get done(): boolean {
    return this.end !== null;
  }

  // ------------------------------------------------------------ link inputs

  onMessage(msg: Message<Uint8Array>): void {
    if (msg.type === "report") return this.onReport(msg.json);
    if (this.trace !== null && msg.type === "pageRequest") this.trace.request(msg.page);
    this.engine.handle({ kind: "message", msg }, nowUs());
    // The destination took the switchover: the order of pages no longer matters, so they may spread over several connections.
    if (this.spreads && (msg.type === "resumed" || (msg.type === "recover" && msg.resumed))) this.link.spread();
    if (msg.type === "resumed" || msg.type === "recover" || msg.type === "error") this.releaseBulk();
    this.drive();
  }

  /** The fault lane answered demand requests itself (fault-lane.ts): the engine books the pages as sent. */
  onServed(pages: Uint32Array, zero: Uint8Array, bytes: number): void {
    this.engine.handle({ kind: "served", pages, zero, bytes }, nowUs());
    this.drive();
  }

  /** A socket drained: its lane has room again. */
  onWritable(): void {
    this.drive();
  }

  /** The destination's bytes did not decode: the engine decides (no reconnecting to a peer that sends garbage). */
  onMalformed(reason: string): void {
    this.linkReason = reason;
    this.engine.handle({ kind: "malformed", reason }, nowUs());
    this.drive();
    void this.link.close();
  }

  onLinkDown(reason: string): void {
    this.linkReason = reason;
    // A switchover resent after recovery must find the lane open (it holds again once sent).
    this.releaseBulk();
    this.release.forget();
    if (this.end === null) this.dopts.log(`link down: ${reason}`);
    this.engine.handle({ kind: "linkDown" }, nowUs());
    this.drive();
    if (this.end !== null) {
      this.resolveFinal(`the link to the destination failed before its report came: ${reason}`);
      return;
    }
    // Reconnect until the engine's reconnect deadline ends the migration.
    void this.link.reconnect(this.dopts.log, () => this.end !== null).then((ok) => {
      if (!ok || this.end !== null) return;
      this.notice = "link re-established; recovering";
      this.engine.handle({ kind: "linkUp" }, nowUs());
      this.drive();
    });
  }

  start(): void {
    this.release.sample(nowUs());
    this.cpu.mark("start");
    this.dopts.log(this.link.nativeSending ? "bulk pages: native data plane (a sender thread reads them from the memfd)" : "bulk pages: through Node (TLS or PPSIM_DATAPLANE=js)");
    this.engine.start(nowUs());
    this.drive();
  }

  /** null if cancelled, else why not. */
  cancel(reason: string): string | null {
    const r = this.engine.cancel(reason, nowUs());
    this.drive();
    this.notice = r.ok ? `cancelled: ${reason}` : `cancel refused: ${r.reason}`;
    return r.ok ? null : r.reason;
  }

  close(): void {
    this.timer.clear();
    clearTimeout(this.holdTimer);
    this.port.close();
    this.cpu.close();
    this.resolveFinal("the source closed before the destination's report came");
  }

  // ------------------------------------------------------------ the loop

  private drive(): void {
    this.budget = this.link.nativeSending ? NATIVE_BYTES_PER_TURN * Math.max(1, this.link.bulkStreams) : BYTES_PER_TURN;
    driveSource(this.engine, this.fx, nowUs());
    if (this.budget <= 0 && !this.again) {
      // The kernel still takes bytes: carry on after other I/O had its turn.
      this.again = true;
      setImmediate(() => {
        this.again = false;
        this.drive();
      });
    }
  }

  /** Once: the standby copy's window just closed (the engine's plan says when). */
  private noteProtection(): void {
    const f = this.engine.standbyFigures;
    if (this.protectionNoted || f === null || f.protectedAt === null || f.switchoverAt === null) return;
    this.protectionNoted = true;
    this.dopts.standby?.markProtected(f, (f.protectedAt - f.switchoverAt) / 1000);
  }

  private effects(): SourceEffects<Uint8Array> {
    const pageSize = this.guest.layout.pageSize;
    return {
      canSend: (channel: Channel) => this.budget > 0 && !(channel === "bulk" && this.holdBulk) && this.link.hasRoom(channel),
      send: (channel, msg) => {
        // Before the send: a native sender thread may put the frame on the wire (and the destination take it) before send returns.
        if (msg.type === "switchover" && this.switchoverTimes.sentAt === null) {
          this.switchoverTimes.sentAt = nowUs();
          stamp("s.send");
        }
        if (msg.type === "switchover" && this.spreads && switchoverHoldWanted()) this.holdBulkUntilResumed();
        this.budget -= this.link.send(channel, this.withBytes(channel, msg), pageSize);
        // The frame is the link's: this loop is off the switchover's path (PPSIM_SWITCHOVER_RR).
        if (msg.type === "switchover") {
          stamp("s.link_send_returned");
          this.closeWindow();
        }
        if (this.trace !== null && channel === "urgent" && msg.type === "pages") this.trace.replied(msg.pages);
        if (channel === "bulk" && msg.type === "pages" && this.engine.isCommitted) {
          const at = this.link.bulkPosition;
          this.release.sent(at.epoch, at.stream, at.bytes, msg.pages.slice());
        }
        this.maybeBreak();
      },
      setTimer: (at) => this.timer.set(at),
      pauseGuest: () => {
        // PPSIM_SWITCHOVER_RR: the PAUSE reply wakes this loop inside the downtime (loop-priority.ts).
        this.closeWindow();
        this.cpu.mark("pause");
        this.closeWindow = raiseForSwitchover(this.dopts.log);
        stampRole("source");
        stamp("s.pause_asked");
        this.guest.pause().then(
          (cpuState) => {
            this.switchoverTimes.pausedAt = nowUs();
            stamp("s.paused");
            this.engine.handle({ kind: "guestPaused", cpuState }, nowUs());
            this.switchoverTimes.engineUs = nowUs() - this.switchoverTimes.pausedAt;
            stamp("s.engine_handled");
            this.drive();
            stamp("s.drive_done");
          },
          (e: unknown) => {
            this.closeWindow();
            this.finish("failed", `pausing the source guest failed: ${messageOf(e)}`);
          },
        );
      },
      resumeGuest: () => void this.guest.resume().catch((e: unknown) => this.dopts.log(`resuming the source guest failed: ${messageOf(e)}`)),
      throttleGuest: (ratio) => void this.guest.throttle(ratio).catch((e: unknown) => this.dopts.log(`throttling the source guest failed: ${messageOf(e)}`)),
      ...(this.dopts.standby === undefined ? {} : { standbyRoom: () => this.dopts.standby!.hasRoom, standbyWrite: (op: StandbyOp) => this.dopts.standby!.push(op) }),
      releasePages: (count) => {
        // Every page is at the destination: the source's copy of RAM is no longer needed.
        if (count === this.engine.metrics.pageCount) {
          punchHole(this.guest.memfd, 0, this.guest.layout.memBytes);
          this.release.sample(nowUs());
        }
      },
      finished: (end: Ending) => {
        const linkLost = (end.cause === EndCause.LinkLost || end.cause === EndCause.ReconnectTimeout) && this.linkReason !== null;
        this.finish(end.outcome, linkLost ? `${this.linkReason}; ${end.reason}` : end.reason);
      },
    };
  }

  private holdBulkUntilResumed(): void {
    this.holdBulk = true;
    clearTimeout(this.holdTimer);
    this.holdTimer = setTimeout(() => this.releaseBulk(), SWITCHOVER_HOLD_MS);
  }

  private releaseBulk(): void {
    clearTimeout(this.holdTimer);
    if (!this.holdBulk) return;
    this.holdBulk = false;
    // The caller drives (a message, a link event); the timer's release must itself.
    setImmediate(() => this.drive());
  }

  /** DEFERRED pages (native data plane) that Node writes after all — the urgent lane's replies — get their bytes now. */
  private withBytes(channel: Channel, msg: Message<Uint8Array>): Message<Uint8Array> {
    if (!this.port.deferred || msg.type !== "pages" || (channel === "bulk" && this.link.nativeSending)) return msg;
    return { type: "pages", pages: msg.pages, data: msg.data.map((d, i) => (d === null ? null : this.port.readBytes(msg.pages[i]))) };
  }

  private maybeBreak(): void {
    const at = this.dopts.breakLinkAfterPostcopyBytes;
    if (at === undefined || this.broken || this.engine.metrics.postcopyBulkBytes < at) return;
    this.broken = true;
    setImmediate(() => this.link.breakLink("link broken on purpose (--break-link-after)"));
  }

  private onReport(json: string): void {
    let r;
    try {
      r = parseDestReport(json);
    } catch (e) {
      this.dopts.log(`ignoring a destination report: ${messageOf(e)}`);
      return;
    }
    if (r.kind === "progress") {
      const latencies = this.remote.faultLatenciesUs;
      for (const l of r.metrics.faultLatenciesUs) latencies.push(l);
      this.remote = { ...r.metrics, faultLatenciesUs: latencies };
      if (r.steps !== null) this.remoteSteps = { at: r.at, steps: r.steps };
      if (r.bulkTaken !== undefined) {
        const held = this.release.taken(r.bulkTaken.epoch, [r.bulkTaken.bytes, ...(r.bulkTaken.extra ?? [])], nowUs());
        // Installed at the destination after the pause: the standby copy need not hold them.
        for (const pages of held) this.engine.handle({ kind: "destinationHolds", pages }, nowUs());
        if (held.length > 0) {
          this.noteProtection();
          this.drive();
        }
      }
      if (r.switchover !== undefined) {
        this.switchoverTimes.arrivedAt = r.switchover.arrivedAt;
        this.switchoverTimes.resumedAt = r.switchover.resumedAt;
        this.switchoverTimes.frameAt = r.switchover.frameAt ?? null;
      }
    } else if (r.kind === "final") {
      this.remote = r.metrics;
      this.final = r;
      this.resolveFinal(r);
    } else {
      this.resolveFinal(`the destination failed: ${r.reason}`);
    }
  }

  private finish(outcome: DriverEnd["outcome"], rawReason: string): void {
    if (this.end !== null) return;
    this.closeWindow();
    clearTimeout(this.holdTimer);
    // The reason may quote the destination's own words: no control characters reach a log, the TUI or the report.
    const reason = sanitize(rawReason, 4096);
    this.timer.clear();
    // Before the release log stops: its punching thread exits then, and a thread gone before a mark loses its time.
    this.cpu.mark("end");
    this.cpu.close();
    this.release.stop();
    const traced = this.trace?.finish();
    if (traced != null) this.dopts.log(`fault trace in ${traced}`);
    this.end = { outcome, reason };
    this.notice = `${outcome}: ${reason}`;
    if (outcome !== "completed") this.resolveFinal(reason);
    this.resolveEnd(this.end);
  }
}
