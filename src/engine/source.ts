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
import { encodedSize } from "./codec.js";
import { EndCause, type CommandResult, type SourceAction, type SourceGuestPort, type SourceInput } from "./events.js";
import { ALL_CAPABILITIES, Capability, ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, type Channel, type Message, type PagesMsg } from "./messages.js";
import type { MigrationOptions } from "./options.js";
import { makeOrder, type BackgroundOrder } from "./order.js";
import type { PageRuns } from "./page-sender.js";
import type { SwitchoverReason } from "./report.js";
import type { Committed, Layout } from "./source-core.js";
import { SourceRounds } from "./source-rounds.js";
import type { StandbyConfig, StandbyFigures, StandbyOp } from "./standby.js";

export type { Layout } from "./source-core.js";

const NO_PAGES = new Uint32Array(0);

export class Source<P> extends SourceRounds<P> {
  private readonly order: BackgroundOrder;
  private peerCapabilities = 0;
  /** The post-copy push's page source for `batch`, made once (one call per background message). */
  private readonly inPushOrder: PageRuns;

  constructor(opts: MigrationOptions, layout: Layout, guest: SourceGuestPort<P>, standby: StandbyConfig | null = null) {
    super(opts, layout, guest, standby);
    const order = makeOrder(opts.backgroundOrder, opts.prefetchPages);
    this.order = order;
    const ledger = this.ledger;
    this.inPushOrder = {
      get runLength() {
        return order.runLength;
      },
      nextRun: (max) => order.nextRun(ledger.pending, max),
    };
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
      case "served":
        return this.onServed(input.pages, input.zero, input.bytes);
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

  /**
   * A pages message this engine sent is free again: the driver owned it to
   * its end and nothing holds it or its arrays (the simulator, once the
   * destination took it in). Its next messages may reuse it. Drivers that
   * hand a message on (the real back end's senders) never call this.
   */
  recycle(msg: PagesMsg<P>): void {
    this.sender.recycle(msg);
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

  /** The driver's fault lane answered these requests: booked as the engine's own urgent replies are. */
  private onServed(pages: Uint32Array, zero: Uint8Array, bytes: number): void {
    const s = this.stage;
    this.metrics.bytesSent.urgent += bytes;
    if (s.name !== "committed") return;
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i];
      if (!(page < this.layout.pageCount)) continue;
      this.order.onFault(page);
      // Sent already (a push on its way, or there): the lane's copy is a duplicate the destination drops.
      if (this.ledger.sent.has(page)) {
        this.metrics.requestsAlreadySent++;
        continue;
      }
      this.metrics.requestsServed++;
      this.metrics.pagesSent++;
      if (zero[i] === 1) this.metrics.pagesZero++;
      if (this.ledger.markSent(page, "urgent")) this.metrics.pagesResent++;
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
    this.ledger.pendAllUnsent(); // nothing is sent yet: every page
    this.startRound(now);
  }

  /**
   * Inside the downtime (issue 9): nothing here walks the guest's pages.
   * The stale list comes from the dirt since the last round (the ledger's
   * list), "pending" becomes a view of "not sent", and stop-and-copy takes
   * its pages from the same list; the standby copy's plan (opt-in) takes
   * its needed set from the same list or a view (standby.ts).
   */
  private onGuestPaused(cpuState: Uint8Array, now: number): void {
    const s = this.stage;
    if (s.name !== "committed" || s.step !== "pausing") return;
    const ledger = this.ledger;
    const dirty = this.guest.collectDirty();
    ledger.dirtied(dirty);
    this.standby?.onDirty(dirty);
    // Every page sent once whose current copy is not at (or on its way to) the destination.
    // Post-copy's switchover carries them; pre-copy sends their fresh copies ahead of it instead.
    const stale = ledger.stale();
    s.switchover = { cpuState, stale: s.postcopy ? stale : NO_PAGES, sent: false };
    ledger.pendAllUnsent();
    // Every page sent once (a stop-and-copy follows a whole round): the stale pages are all the destination lacks.
    this.useList(!s.postcopy && ledger.everSent.count === this.layout.pageCount ? stale : null);
    // What post-copy still has to push is what the destination lacks: the copy must hold it.
    if (s.postcopy) this.standby?.atSwitchover(ledger.pending, now, stale);
    else this.standby?.stop();
    this.cursor = 0;
    s.step = s.postcopy ? "pushing" : "stopcopy";
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

  private replyChannel(): Channel {
    return this.opts.urgentChannel && this.peerCapabilities & Capability.UrgentChannel ? "urgent" : "bulk";
  }

  private switchoverMessage(s: Committed): Message<P> {
    const sw = s.switchover as NonNullable<Committed["switchover"]>;
    sw.sent = true;
    // Post-copy: the destination drops the stale pages and resumes at once.
    // Pre-copy: fresh copies of those pages went ahead of this message.
    return { type: "switchover", stale: s.postcopy ? sw.stale : NO_PAGES, cpuState: sw.cpuState };
  }

  // --------------------------------------------------------------- switchover

  protected beginSwitchover(reason: SwitchoverReason, now: number): void {
    this.metrics.switchoverReason = reason;
    const postcopy = this.opts.mode !== "precopy" && reason !== "converged" && reason !== "converged-throttled";
    this.setStage({ name: "committed", step: "pausing", postcopy, switchover: null, link: "up", destResumed: false, destRan: false });
    this.metrics.pausedAt = now;
    this.actions.push({ kind: "pauseGuest" });
  }
}
