/**
 * The source side of a migration: pure and synchronous, in the shape of
 * quinn-proto's `Connection`. The driver calls, in this order, after anything
 * happened (an input, a timeout, room on a lane):
 *
 *   handle(input, now) / handleTimeout(now) / cancel(reason, now)
 *   pollAction()             until null: guest and control actions
 *   pollTransmit(lane, now)  for each lane, while it has room, until null
 *   pollTimeout()            the next deadline, to call handleTimeout at
 *
 * The next message is chosen when a lane can take it, never earlier: a page
 * request is answered ahead of every background page not yet pulled, and the
 * only send window is the lane's own.
 *
 * Stages: setup → precopy (rounds) → committed (pausing → stopcopy or
 * pushing → draining) → done. Once it asks the guest to pause for switchover
 * the source is committed (cancel is refused), but the point of no return is
 * later: the destination's guest running. Until the switchover message has
 * gone out, or until the destination says it could not start its guest, a
 * failure resumes the source guest (failed, not lost: `ResumedAtSource`).
 * Once the switchover is out and not yet confirmed the source is in doubt
 * and waits for the link; once confirmed (`resumed`, or a recover saying the
 * switchover was taken) only completion or recovery remain. Before the pause,
 * any failure leaves the guest running.
 */
import { Bitmap } from "./bitmap.js";
import { encodedSize } from "./codec.js";
import { EndCause, type CommandResult, type Outcome, type SourceAction, type SourceGuestPort, type SourceInput } from "./events.js";
import { PageLedger } from "./ledger.js";
import { ALL_CAPABILITIES, Capability, ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, type Channel, type Message } from "./messages.js";
import { newSourceMetrics, type SourceMetrics } from "./metrics.js";
import type { MigrationOptions } from "./options.js";
import { makeOrder, type BackgroundOrder } from "./order.js";
import { Pacer } from "./pacer.js";
import { PageSender } from "./page-sender.js";
import type { Phase, SwitchoverReason } from "./report.js";
import { StandbyPlan, type StandbyConfig, type StandbyFigures, type StandbyOp } from "./standby.js";
import { SwitchoverPolicy } from "./switchover.js";
import { ThroughputEstimator } from "./throughput.js";
import { TimerTable } from "./timers.js";

export interface Layout {
  pageSize: number;
  pageCount: number;
}

interface Round {
  startedAt: number;
  pages: number;
  bytes: number;
}

/** Past the pause: what the source has committed to. */
interface Committed {
  step: "pausing" | "stopcopy" | "pushing" | "draining";
  postcopy: boolean;
  /** Set once the guest has paused: its vCPU state, and the pages the destination must drop. */
  switchover: { cpuState: Uint8Array; stale: Uint32Array; sent: boolean } | null;
  /** "recovering": the link broke; the source waits for it and then for the destination's recover. */
  link: "up" | "down" | "awaitingRecover";
  /** The destination took the switchover (said `resumed`, or recover said so): its guest may have run. */
  destResumed: boolean;
  /** The destination said `resumed`: its guest has run. */
  destRan: boolean;
}

type Stage =
  | { name: "idle" }
  | { name: "setup" }
  | { name: "precopy"; round: Round }
  | ({ name: "committed" } & Committed)
  | { name: "done" };

type Timer = "setup" | "reconnect" | "pace";

/** Whether a failure is the destination's own word that it stopped (see `fail`). */
type PeerStopped = "no" | "unconfirmed" | "certain";

export class Source<P> {
  readonly metrics: SourceMetrics;
  private stage: Stage = { name: "idle" };
  private readonly actions: SourceAction[] = [];
  private readonly outbox: Record<Channel, Message<P>[]> = { urgent: [], bulk: [] };
  private readonly ledger: PageLedger;
  private readonly order: BackgroundOrder;
  private readonly policy: SwitchoverPolicy;
  private readonly pacer: Pacer;
  private readonly throughput = new ThroughputEstimator();
  private readonly timers = new TimerTable<Timer>();
  private peerCapabilities = 0;
  private cursor = 0;
  private readonly sender: PageSender<P>;
  /** The page sources of `batch`, made once (one call per background message). */
  private readonly inOrder = (): number => this.nextInOrder();
  private readonly inPushOrder = (): number => this.order.next(this.ledger.pending);
  /** The last batch made and its size, so that pulling it need not size it again. */
  private batchMsg: Message<P> | null = null;
  private batchBytes = 0;
  /** The standby copy's plan (issue 16), when the source keeps one. */
  private readonly standby: StandbyPlan | null;

  constructor(
    private readonly opts: MigrationOptions,
    private readonly layout: Layout,
    private readonly guest: SourceGuestPort<P>,
    standby: StandbyConfig | null = null,
  ) {
    if (!(layout.pageCount > 0 && layout.pageCount < 2 ** 32)) throw new RangeError(`page count must be in 1..2^32-1, got ${layout.pageCount}`);
    this.ledger = new PageLedger(layout.pageCount);
    this.order = makeOrder(opts.backgroundOrder, opts.prefetchPages);
    this.policy = new SwitchoverPolicy(opts, layout.pageSize);
    this.pacer = new Pacer(opts.bandwidthCap, opts.laneWindowBytes);
    this.metrics = newSourceMetrics(opts.mode, layout);
    this.sender = new PageSender(layout.pageSize, opts.batchPages, guest, this.ledger, this.metrics, this.pacer);
    // Without dirty tracking before switchover (pure post-copy) the copy starts at switchover.
    this.standby = standby === null ? null : new StandbyPlan(layout.pageCount, standby, opts.mode !== "postcopy");
  }

  /** The standby copy's figures (null without one). */
  get standbyFigures(): StandbyFigures | null {
    return this.standby?.figures ?? null;
  }

  /** The next write for the standby copy's storage queue, or null (see StandbyPlan). */
  pollStandby(): StandbyOp | null {
    const s = this.stage;
    // Before switchover the copy follows pre-copy (dirty tracking runs); after it, the completed pause.
    if (this.standby === null) return null;
    if (s.name === "precopy" || (s.name === "committed" && s.switchover !== null)) return this.standby.next();
    return null;
  }

  get finished(): boolean {
    return this.stage.name === "done";
  }

  /** Whether the bandwidth cap holds the next background message back (a timer is set for it). */
  get isPacing(): boolean {
    return this.timers.isSet("pace");
  }

  /** True once the guest was asked to pause for switchover: cancel is refused from then on. */
  get isCommitted(): boolean {
    return this.stage.name === "committed" || (this.stage.name === "done" && this.metrics.pausedAt !== null);
  }

  // ------------------------------------------------------------ driver API

  /** Begin: the handshake goes out on the next bulk pull. */
  start(now: number): void {
    if (this.stage.name !== "idle") return;
    this.setStage({ name: "setup" });
    this.metrics.startedAt = now;
    this.pacer.start(now);
    this.timers.set("setup", now + this.opts.setupTimeoutMs * 1000);
    this.queue("bulk", {
      type: "hello",
      version: PROTOCOL_VERSION,
      capabilities: ALL_CAPABILITIES,
      pageSize: this.layout.pageSize,
      pageCount: this.layout.pageCount,
      mode: this.opts.mode,
    });
  }

  handle(input: SourceInput<P>, now: number): void {
    switch (input.kind) {
      case "message":
        return this.onMessage(input.msg, now);
      case "guestPaused":
        return this.onGuestPaused(input.cpuState, now);
      case "standbyWritten":
        return this.standby?.written(input.seq, now);
      case "destinationHolds":
        return this.standby?.held(input.pages, now);
      case "linkDown":
        return this.onLinkDown(now);
      case "linkUp":
        if (this.stage.name === "committed" && this.stage.link === "down") {
          this.stage.link = "awaitingRecover";
          this.setStage(this.stage);
        }
        return;
      case "malformed":
        return this.fail(EndCause.ProtocolError, `the destination sent bytes that do not decode: ${input.reason}`, null, now);
    }
  }

  handleTimeout(now: number): void {
    for (const t of this.timers.expire(now)) {
      if (t === "setup" && this.stage.name === "setup") {
        this.fail(EndCause.SetupTimeout, `the destination did not answer the handshake within ${this.opts.setupTimeoutMs} ms`, null, now);
      } else if (t === "reconnect" && this.stage.name === "committed" && this.stage.link !== "up") {
        this.onReconnectTimeout(this.stage, now);
      }
      // "pace": nothing to do; the next pull sends.
    }
  }

  /** Asks to cancel: honoured before switchover, refused with why after it. */
  cancel(reason: string, now: number): CommandResult {
    if (this.stage.name === "done") return { ok: false, reason: `the migration has already ended: ${this.metrics.reason}` };
    if (this.stage.name === "committed") {
      return { ok: false, reason: "past switchover the destination guest owns the VM: the migration can only complete or be recovered" };
    }
    if (this.stage.name !== "idle") this.queue("bulk", { type: "cancel", reason });
    this.abandon("cancelled", EndCause.Cancelled, `cancelled: ${reason}; the source guest keeps running`, now);
    return { ok: true };
  }

  pollAction(): SourceAction | null {
    return this.actions.shift() ?? null;
  }

  pollTimeout(): number | null {
    return this.timers.next();
  }

  /** The next message for this lane, which has room for one; null when there is nothing to send on it now. */
  pollTransmit(channel: Channel, now: number): Message<P> | null {
    const msg = this.nextMessage(channel, now);
    if (msg === null) {
      if (channel === "bulk" && !this.timers.isSet("pace")) this.throughput.onStarved();
      return null;
    }
    const bytes = msg === this.batchMsg ? this.batchBytes : encodedSize(msg, this.layout.pageSize);
    this.batchMsg = null;
    this.metrics.bytesSent[channel] += bytes;
    if (channel === "bulk") {
      this.throughput.onPull(bytes, now);
      this.ledger.bulkOffset += bytes;
    }
    return msg;
  }

  // ------------------------------------------------------------------ inputs

  private onMessage(msg: Message<P>, now: number): void {
    const s = this.stage;
    if (s.name === "done") {
      // A destination that reconnects after we gave up learns it was in vain.
      if (msg.type === "recover") this.queue("urgent", { type: "cancel", reason: `the source has ended: ${this.metrics.reason}` });
      return;
    }
    switch (msg.type) {
      case "helloAck":
        return this.onHelloAck(msg.version, msg.capabilities, now);
      case "pageRequest":
        if (s.name !== "committed" || msg.page >= this.layout.pageCount) {
          return this.protocolError(`unexpected request for page ${msg.page} (of ${this.layout.pageCount}) in stage ${s.name}`, now);
        }
        this.order.onFault(msg.page);
        this.sender.request(msg.page);
        return;
      case "resumed":
        if (s.name === "committed" && s.switchover?.sent === true) s.destResumed = s.destRan = true;
        return;
      case "report": // for the agent, not the engine
        return;
      case "complete":
        if (s.name !== "committed" || s.switchover?.sent !== true) return this.protocolError("destination reported complete before switchover", now);
        return this.finish("completed", EndCause.Completed, "every page is at the destination", now);
      case "recover":
        return this.onRecover(msg.resumed, msg.bulkBytes, msg.received, now);
      case "error": {
        // The destination says "resumed" before any error, on the same lane: an error
        // before it comes from a destination that stopped without running its guest.
        // ResumeFailed is sent only by one that took the switchover and made sure its guest does not run.
        const stopped = msg.code === ErrorCode.ResumeFailed ? "certain" : "unconfirmed";
        return this.fail(EndCause.PeerError, `destination reported error ${msg.code}: ${msg.reason}`, null, now, stopped);
      }
      case "cancel":
        return this.fail(EndCause.PeerCancelled, `destination cancelled: ${msg.reason}`, null, now, "unconfirmed");
      default:
        return this.protocolError(`unexpected ${msg.type} message from the destination`, now);
    }
  }

  private onHelloAck(version: number, capabilities: number, now: number): void {
    if (this.stage.name !== "setup") return this.protocolError(`unexpected helloAck in stage ${this.stage.name}`, now);
    this.timers.clear("setup");
    if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
      const why = `destination speaks protocol version ${version}; this source speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`;
      return this.fail(EndCause.Incompatible, why, ErrorCode.VersionMismatch, now);
    }
    this.peerCapabilities = capabilities;
    if (this.opts.mode !== "precopy" && !(capabilities & Capability.Postcopy)) {
      return this.fail(EndCause.Incompatible, "destination cannot take post-copy; use --mode precopy", ErrorCode.Protocol, now);
    }
    this.metrics.setupDoneAt = now;
    if (this.opts.mode === "postcopy") return this.beginSwitchover("postcopy", now);
    this.guest.collectDirty(); // starts dirty tracking; the first pass sends everything anyway
    this.ledger.pending.fill();
    this.startRound(now);
  }

  private onGuestPaused(cpuState: Uint8Array, now: number): void {
    const s = this.stage;
    if (s.name !== "committed" || s.step !== "pausing") return;
    const ledger = this.ledger;
    const dirty = this.guest.collectDirty();
    ledger.dirtied(dirty);
    this.standby?.onDirty(dirty);
    // Every page sent once whose current copy is not at (or on its way to) the destination.
    s.switchover = { cpuState, stale: ledger.stale(), sent: false };
    ledger.pendAllUnsent();
    // What post-copy still has to push is what the destination lacks: the copy must hold it.
    if (s.postcopy) this.standby?.atSwitchover(ledger.pending, now);
    else this.standby?.stop();
    this.cursor = 0;
    s.step = s.postcopy ? "pushing" : "stopcopy";
    this.setStage(s);
  }

  private onLinkDown(now: number): void {
    this.outbox.urgent.length = 0;
    this.outbox.bulk.length = 0;
    this.sender.dropRequests();
    this.throughput.onStarved();
    const s = this.stage;
    if (s.name === "done") return;
    if (s.name !== "committed") {
      return this.abandon("failed", EndCause.LinkLost, "link lost before switchover; the source guest keeps running", now);
    }
    if (this.mayResume(s, "no")) return this.resumeHere(EndCause.LinkLost, "link lost before the switchover reached the destination", now);
    if (s.link === "up") this.timers.set("reconnect", now + this.opts.reconnectTimeoutMs * 1000);
    s.link = "down";
    this.setStage(s);
  }

  private onRecover(resumed: boolean, bulkBytes: number, receivedBytes: Uint8Array, now: number): void {
    const s = this.stage;
    if (s.name !== "committed" || s.link === "up") return this.protocolError(`unexpected recover in stage ${this.stage.name}`, now);
    let received: Bitmap;
    try {
      received = Bitmap.fromBytes(receivedBytes, this.layout.pageCount);
    } catch (e) {
      return this.protocolError(`recover: ${(e as Error).message}`, now);
    }
    if (bulkBytes > this.ledger.bulkOffset) {
      return this.protocolError(`recover: destination claims ${bulkBytes} bulk bytes, only ${this.ledger.bulkOffset} were sent`, now);
    }
    this.metrics.recoveries++;
    this.timers.clear("reconnect");
    s.link = "up";
    if (resumed) s.destResumed = true;
    const mustDrop = this.ledger.reconcile({ resumed, bulkBytes, received });
    this.cursor = 0;
    if (s.switchover !== null && !resumed) {
      // The switchover was lost: send it again, now also dropping held copies that are out of date.
      const merged = new Set<number>([...s.switchover.stale, ...mustDrop]);
      s.switchover.stale = Uint32Array.from([...merged].sort((a, b) => a - b));
      s.switchover.sent = false;
    }
    if (s.step !== "pausing") s.step = s.postcopy ? "pushing" : resumed ? "draining" : "stopcopy";
    this.setStage(s);
  }

  // ---------------------------------------------------------------- transmit

  private nextMessage(channel: Channel, now: number): Message<P> | null {
    const queued = this.outbox[channel].shift();
    if (queued !== undefined) return queued;
    const s = this.stage;
    if (s.name === "precopy") return channel === "bulk" ? this.precopyBatch(now) : null;
    if (s.name !== "committed" || s.link !== "up") return null;
    if (channel === this.replyChannel()) {
      const reply = this.sender.demandReply(channel);
      if (reply !== null) return reply;
    }
    if (channel !== "bulk" || s.switchover === null) return null;
    switch (s.step) {
      case "stopcopy": {
        const batch = this.batch(this.inOrder, now, false);
        if (batch !== null) return batch;
        s.step = "draining";
        this.setStage(s);
        return this.switchoverMessage(s);
      }
      case "pushing": {
        if (!s.switchover.sent) return this.switchoverMessage(s);
        const batch = this.batch(this.inPushOrder, now, true);
        if (batch === null && this.ledger.pending.count === 0) {
          s.step = "draining";
          this.setStage(s);
        }
        return batch;
      }
      default:
        return null;
    }
  }

  private precopyBatch(now: number): Message<P> | null {
    // A round ends once its last page is read: the dirty log from then on
    // covers every write made after a page was read.
    for (;;) {
      if (this.stage.name !== "precopy") return null;
      const batch = this.batch(this.inOrder, now, true);
      if (batch !== null || this.ledger.pending.count > 0) return batch;
      this.endRound(now);
    }
  }

  private replyChannel(): Channel {
    return this.opts.urgentChannel && this.peerCapabilities & Capability.UrgentChannel ? "urgent" : "bulk";
  }

  /** A background batch for the bulk lane, booked to the round or the post-copy push; null when paced or none is left. */
  private batch(next: () => number, now: number, paced: boolean): Message<P> | null {
    const b = this.sender.batch(next, now, paced);
    if (b.kind === "paced") {
      this.timers.set("pace", b.until);
      return null;
    }
    this.timers.clear("pace");
    if (b.kind === "none") return null;
    const s = this.stage;
    if (s.name === "precopy") {
      s.round.pages += b.pages;
      s.round.bytes += b.bytes;
    } else if (s.name === "committed" && s.postcopy) {
      this.metrics.postcopyPushedPages += b.pages;
      this.metrics.postcopyBulkBytes += b.bytes;
    }
    this.batchMsg = b.msg;
    this.batchBytes = b.bytes;
    return b.msg;
  }

  private nextInOrder(): number {
    const p = this.ledger.pending.nextSet(this.cursor);
    if (p >= 0) this.cursor = p + 1;
    return p;
  }

  private switchoverMessage(s: Committed): Message<P> {
    const sw = s.switchover as NonNullable<Committed["switchover"]>;
    sw.sent = true;
    // Post-copy: the destination drops the stale pages and resumes at once.
    // Pre-copy: fresh copies of those pages went ahead of this message.
    return { type: "switchover", stale: s.postcopy ? sw.stale : new Uint32Array(0), cpuState: sw.cpuState };
  }

  private queue(channel: Channel, msg: Message<P>): void {
    this.outbox[channel].push(msg);
  }

  // ---------------------------------------------------------- pre-copy rounds

  private startRound(now: number): void {
    this.setStage({ name: "precopy", round: { startedAt: now, pages: 0, bytes: 0 } });
    this.cursor = 0;
  }

  private endRound(now: number): void {
    const s = this.stage as Extract<Stage, { name: "precopy" }>;
    const round = s.round;
    this.metrics.rounds.push({ pages: round.pages, bytes: round.bytes, ms: (now - round.startedAt) / 1000 });
    const dirty = this.guest.collectDirty();
    this.ledger.dirtied(dirty);
    this.standby?.onDirty(dirty);
    const bytesPerUs = this.throughput.bytesPerUs;
    const roundUs = now - round.startedAt;
    this.metrics.precopy = {
      remainingPages: dirty.length,
      dirtyRateBytesPerSec: roundUs > 0 ? (dirty.length * this.layout.pageSize * 1e6) / roundUs : 0,
      bandwidthBytesPerSec: bytesPerUs === Infinity ? 0 : bytesPerUs * 1e6,
      expectedDowntimeMs: this.policy.expectedDowntimeMs(dirty.length, bytesPerUs),
      downtimeLimitMs: this.opts.downtimeLimitMs,
    };
    const decision = this.policy.afterRound({
      rounds: this.metrics.rounds.length,
      roundPages: round.pages,
      roundBytes: round.bytes,
      dirtyPages: dirty.length,
      bytesPerUs,
      throttle: this.metrics.throttle,
    });
    if (decision.kind === "switch") return this.beginSwitchover(decision.reason, now);
    if (decision.throttle !== null) {
      this.metrics.throttle = decision.throttle;
      this.actions.push({ kind: "throttleGuest", ratio: decision.throttle });
    }
    this.startRound(now);
  }

  // --------------------------------------------------------------- switchover

  private beginSwitchover(reason: SwitchoverReason, now: number): void {
    this.metrics.switchoverReason = reason;
    const postcopy = this.opts.mode !== "precopy" && reason !== "converged" && reason !== "converged-throttled";
    this.setStage({ name: "committed", step: "pausing", postcopy, switchover: null, link: "up", destResumed: false, destRan: false });
    this.metrics.pausedAt = now;
    this.actions.push({ kind: "pauseGuest" });
  }

  // ------------------------------------------------------------------ endings

  private protocolError(reason: string, now: number): void {
    this.fail(EndCause.ProtocolError, reason, ErrorCode.Protocol, now);
  }

  /**
   * A failure: before the pause the source guest runs on; past it, the source
   * resumes its guest while the destination's cannot have run, else it stays
   * paused and keeps every page. `peerStopped`: the destination itself
   * reported it — "unconfirmed": it stopped without running its guest unless
   * it had taken the switchover; "certain": it says its guest never ran.
   */
  private fail(cause: EndCause, reason: string, code: number | null, now: number, peerStopped: PeerStopped = "no"): void {
    const s = this.stage;
    if (s.name === "done") return;
    const linkUp = s.name !== "committed" || s.link === "up";
    if (code !== null && linkUp) this.queue("urgent", { type: "error", code, reason });
    if (s.name !== "committed") return this.abandon("failed", cause, `${reason}; the source guest keeps running`, now);
    if (this.mayResume(s, peerStopped)) return this.resumeHere(cause, reason, now);
    this.finish("failed", cause, `${reason}; ${this.pausedTail(s)}`, now);
  }

  /** Whether the destination's guest cannot have run, so the source may take the VM back. */
  private mayResume(s: Committed, peerStopped: PeerStopped): boolean {
    if (peerStopped === "certain") return true;
    if (s.destResumed) return false;
    return s.switchover === null || !s.switchover.sent || peerStopped === "unconfirmed";
  }

  /** Before the point of no return: the source guest runs again; failed, not lost. */
  private resumeHere(cause: EndCause, why: string, now: number): void {
    this.actions.push({ kind: "resumeGuest" });
    const reason = `${why} (${cause}); the destination guest never ran, so the source guest resumed and keeps running (failed, not lost)`;
    this.abandon("failed", EndCause.ResumedAtSource, reason, now);
  }

  private onReconnectTimeout(s: Committed, now: number): void {
    const secs = this.opts.reconnectTimeoutMs / 1000;
    if (!s.destRan) {
      // In doubt: the switchover went out and no word came back; the destination guest may run.
      return this.finish("failed", EndCause.ReconnectTimeout, `link lost after the switchover was sent and not recovered within ${secs} s; whether the destination guest ran is unknown, so the source guest stays paused and keeps every page`, now);
    }
    const missing = this.ledger.pending.count;
    if (!s.postcopy || missing === 0) {
      return this.finish("failed", EndCause.ReconnectTimeout, `link lost and not recovered within ${secs} s; the destination guest runs and had every page, so the VM lives there; the source guest stays paused`, now);
    }
    const reason =
      `the VM is lost: the destination guest has run since the switchover, so the source cannot resume its own; ` +
      `${missing} pages not yet sent to it were only here, and the link to it did not come back within ${secs} s ` +
      `(the destination died, or the network stayed down); no standby copy holds them`;
    this.finish("failed", EndCause.VmLost, reason, now);
  }

  private pausedTail(s: Committed): string {
    return s.destResumed
      ? "the destination guest runs; the source guest stays paused and keeps every page, for recovery"
      : "the switchover was sent and not confirmed, so the source guest stays paused and keeps every page";
  }

  /** Ends a migration that never switched over: the source guest runs on, unthrottled. */
  private abandon(outcome: "failed" | "cancelled", cause: EndCause, reason: string, now: number): void {
    if (this.metrics.throttle > 0) {
      this.metrics.throttle = 0;
      this.actions.push({ kind: "throttleGuest", ratio: 0 });
    }
    this.finish(outcome, cause, reason, now);
  }

  private finish(outcome: Outcome, cause: EndCause, reason: string, now: number): void {
    if (this.stage.name === "done") return;
    const m = this.metrics;
    m.outcome = outcome;
    m.cause = cause;
    m.reason = reason;
    m.finishedAt = now;
    this.timers.clearAll();
    this.standby?.stop();
    this.setStage({ name: "done" });
    if (outcome === "completed") this.actions.push({ kind: "releasePages", count: this.layout.pageCount });
    this.actions.push({ kind: "finished", outcome, cause, reason });
  }

  /** The one place the stage changes; the reported phase follows from it. */
  private setStage(s: Stage): void {
    this.stage = s;
    this.metrics.phase = phaseOf(s, this.metrics.outcome);
  }
}

function phaseOf(s: Stage, outcome: Outcome | null): Phase {
  switch (s.name) {
    case "idle":
    case "setup":
      return "setup";
    case "precopy":
      return "precopy";
    case "committed":
      if (s.link !== "up") return "recovering";
      return s.postcopy && s.step !== "pausing" ? "postcopy" : "switchover";
    case "done":
      return outcome === "completed" ? "complete" : (outcome ?? "failed");
  }
}
