/**
 * The source side of a migration: pure and synchronous. Events in (`handle`),
 * actions out; the driver owns the clock, the link and the guest.
 *
 * Stages: setup → precopy (rounds) → pausing → stopcopy (pre-copy's last
 * pages) or postcopy (push the rest, serve requests) → draining → done. From
 * the moment it asks the guest to pause for switchover the source is
 * committed: it never resumes its guest, and a broken link is recovered, not
 * abandoned. Before that, any failure leaves the source guest running.
 */
import { Bitmap } from "./bitmap.js";
import { encodedSize, PAGE_ENTRY_OVERHEAD } from "./codec.js";
import type { SourceAction, SourceEvent, SourceGuestPort } from "./events.js";
import { ALL_CAPABILITIES, Capability, ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, type Channel, type Message, type PageEntry } from "./messages.js";
import type { SourceMetrics } from "./metrics.js";
import type { MigrationOptions } from "./options.js";
import { makeOrder, type BackgroundOrder } from "./order.js";
import type { SwitchoverReason } from "./report.js";

export interface Layout {
  pageSize: number;
  pageCount: number;
}

type Stage = "idle" | "setup" | "precopy" | "pausing" | "stopcopy" | "postcopy" | "draining" | "done";

/** Hybrid goes post-copy once a round's dirty set is at least this share of the pages the round sent. */
const STALLED_SHARE = 0.9;

/** Marks a page whose newest copy went on the urgent channel, or none is in flight. */
const NOT_ON_BULK = -1;

export class Source<P> {
  readonly metrics: SourceMetrics;
  private stage: Stage = "idle";
  private now = 0;
  private out: SourceAction<P>[] = [];

  /** Pages of which the destination holds (or is being sent) a current copy. */
  private readonly sent: Bitmap;
  /** Pages ever sent, to count re-sends. */
  private readonly everSent: Bitmap;
  /** Bulk-stream offset at which each page's newest copy was sent (see RecoverMsg.bulkBytes). */
  private readonly sentAtOffset: Float64Array;
  private bulkOffset = 0;
  /** Pages to send in this round (pre-copy) or still to push (post-copy). */
  private pending: Bitmap;
  private cursor = 0;

  private readonly queued: Record<Channel, number> = { urgent: 0, bulk: 0 };
  private readonly requests: number[] = [];
  private readonly order: BackgroundOrder;
  private peerCapabilities = 0;

  private postcopy = false;
  private committed = false;
  private cpuState: Uint8Array | null = null;
  /** Pages sent before the pause and dirtied since: the destination's copies are stale. */
  private stale: Uint32Array = new Uint32Array(0);
  private switchoverSent = false;
  private linkUp = true;
  private awaitingRecover = false;

  private round = { startedAt: 0, pages: 0, bytes: 0 };
  private busyRounds = 0;
  private throughput = { bytes: 0, busyUs: 0, lastAt: 0 };
  private cap = { tokens: 0, at: 0, timerAt: -1 };

  constructor(
    private readonly opts: MigrationOptions,
    private readonly layout: Layout,
    private readonly guest: SourceGuestPort<P>,
  ) {
    if (!(layout.pageCount > 0 && layout.pageCount < 2 ** 32)) throw new RangeError(`page count must be in 1..2^32-1, got ${layout.pageCount}`);
    this.sent = new Bitmap(layout.pageCount);
    this.everSent = new Bitmap(layout.pageCount);
    this.sentAtOffset = new Float64Array(layout.pageCount).fill(NOT_ON_BULK);
    this.pending = new Bitmap(layout.pageCount);
    this.order = makeOrder(opts.backgroundOrder, opts.prefetchPages);
    this.metrics = {
      mode: opts.mode,
      pageSize: layout.pageSize,
      pageCount: layout.pageCount,
      phase: "setup",
      startedAt: null,
      setupDoneAt: null,
      rounds: [],
      pausedAt: null,
      finishedAt: null,
      outcome: null,
      reason: "",
      switchoverReason: "none",
      throttle: 0,
      bytesSent: { urgent: 0, bulk: 0 },
      pagesSent: 0,
      pagesZero: 0,
      pagesResent: 0,
      postcopyPushedPages: 0,
      postcopyBulkBytes: 0,
      requestsServed: 0,
      requestsAlreadySent: 0,
      recoveries: 0,
    };
  }

  get finished(): boolean {
    return this.stage === "done";
  }

  /** True once the guest was asked to pause for switchover: cancel is refused from then on. */
  get isCommitted(): boolean {
    return this.committed;
  }

  handle(ev: SourceEvent<P>, now: number): SourceAction<P>[] {
    this.now = now;
    switch (ev.kind) {
      case "start":
        this.onStart();
        break;
      case "message":
        this.onMessage(ev.msg);
        break;
      case "transmitted":
        this.onTransmitted(ev.channel, ev.bytes);
        break;
      case "guestPaused":
        this.onGuestPaused(ev.cpuState);
        break;
      case "linkDown":
        this.onLinkDown();
        break;
      case "linkUp":
        this.linkUp = true;
        break;
      case "timer":
        this.cap.timerAt = -1;
        break;
      case "cancel":
        this.onCancel(ev.reason);
        break;
    }
    this.pump();
    const out = this.out;
    this.out = [];
    return out;
  }

  // ------------------------------------------------------------------ events

  private onStart(): void {
    if (this.stage !== "idle") return;
    this.stage = "setup";
    this.metrics.startedAt = this.now;
    this.cap.at = this.now;
    this.send("bulk", {
      type: "hello",
      version: PROTOCOL_VERSION,
      capabilities: ALL_CAPABILITIES,
      pageSize: this.layout.pageSize,
      pageCount: this.layout.pageCount,
      mode: this.opts.mode,
    });
  }

  private onMessage(msg: Message<P>): void {
    if (this.stage === "done") {
      // A destination that reconnects after we gave up learns it was in vain.
      if (msg.type === "recover") this.send("urgent", { type: "cancel", reason: `the source has ended: ${this.metrics.reason}` });
      return;
    }
    switch (msg.type) {
      case "helloAck":
        return this.onHelloAck(msg.version, msg.capabilities);
      case "pageRequest":
        if (!this.committed || msg.page >= this.layout.pageCount) {
          return this.protocolError(`unexpected request for page ${msg.page} (of ${this.layout.pageCount}) in stage ${this.stage}`);
        }
        this.requests.push(msg.page);
        return;
      case "resumed":
      case "report": // for the agent, not the engine
        return;
      case "complete":
        if (!this.switchoverSent) return this.protocolError("destination reported complete before switchover");
        return this.finish("completed", "every page is at the destination");
      case "recover":
        return this.onRecover(msg.resumed, msg.bulkBytes, msg.received);
      case "error":
        return this.fail(`destination reported error ${msg.code}: ${msg.reason}`, null);
      case "cancel":
        return this.fail(`destination cancelled: ${msg.reason}`, null);
      default:
        return this.protocolError(`unexpected ${msg.type} message from the destination`);
    }
  }

  private onHelloAck(version: number, capabilities: number): void {
    if (this.stage !== "setup") return this.protocolError(`unexpected helloAck in stage ${this.stage}`);
    if (version < MIN_PROTOCOL_VERSION || version > PROTOCOL_VERSION) {
      return this.fail(`destination speaks protocol version ${version}; this source speaks ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`, ErrorCode.VersionMismatch);
    }
    this.peerCapabilities = capabilities;
    if (this.opts.mode !== "precopy" && !(capabilities & Capability.Postcopy)) {
      return this.fail("destination cannot take post-copy; use --mode precopy", ErrorCode.Protocol);
    }
    this.metrics.setupDoneAt = this.now;
    if (this.opts.mode === "postcopy") return this.beginSwitchover("postcopy");
    this.stage = "precopy";
    this.metrics.phase = "precopy";
    this.guest.collectDirty(); // starts dirty tracking; the first pass sends everything anyway
    this.pending.fill();
    this.startRound();
  }

  private onTransmitted(channel: Channel, bytes: number): void {
    const before = this.queued[channel];
    this.queued[channel] = Math.max(0, before - bytes);
    if (channel === "bulk") {
      // Bandwidth is measured over the time the bulk queue was busy only.
      if (before > 0) this.throughput.busyUs += this.now - this.throughput.lastAt;
      this.throughput.bytes += bytes;
    }
    this.throughput.lastAt = this.now;
  }

  private onGuestPaused(cpuState: Uint8Array): void {
    if (this.stage !== "pausing" || this.cpuState !== null) return;
    this.cpuState = cpuState;
    for (const p of this.guest.collectDirty()) {
      this.sent.clear(p);
      this.pending.set(p);
    }
    // Every page sent once whose current copy is not at (or on its way to) the destination.
    const stale: number[] = [];
    for (const p of this.everSent) if (!this.sent.has(p)) stale.push(p);
    this.stale = Uint32Array.from(stale);
    this.pending = this.unsentPages();
    this.cursor = 0;
    if (this.postcopy) {
      this.stage = "postcopy";
      this.metrics.phase = "postcopy";
      if (this.linkUp && !this.awaitingRecover) this.sendSwitchover();
    } else {
      this.stage = "stopcopy";
    }
  }

  private onLinkDown(): void {
    this.queued.urgent = 0;
    this.queued.bulk = 0;
    this.requests.length = 0;
    if (this.stage === "done") return;
    if (!this.committed) {
      this.abandon("failed", "link lost before switchover; the source guest keeps running");
      return;
    }
    this.linkUp = false;
    this.awaitingRecover = true;
    this.metrics.phase = "recovering";
  }

  private onRecover(resumed: boolean, bulkBytes: number, receivedBytes: Uint8Array): void {
    if (!this.committed || !this.awaitingRecover) return this.protocolError(`unexpected recover in stage ${this.stage}`);
    let received: Bitmap;
    try {
      received = Bitmap.fromBytes(receivedBytes, this.layout.pageCount);
    } catch (e) {
      return this.protocolError(`recover: ${(e as Error).message}`);
    }
    if (bulkBytes > this.bulkOffset) return this.protocolError(`recover: destination claims ${bulkBytes} bulk bytes, only ${this.bulkOffset} were sent`);
    this.metrics.recoveries++;
    this.awaitingRecover = false;
    // Held = received, minus pages whose newest copy was lost in flight (the
    // destination may hold an older one), minus pages dirtied since sent.
    const mustResend: number[] = [];
    for (let p = 0; p < this.layout.pageCount; p++) {
      const lost = this.sentAtOffset[p] >= bulkBytes;
      if (lost) this.sentAtOffset[p] = NOT_ON_BULK;
      if (received.has(p) && !lost && this.sent.has(p)) continue;
      this.sent.clear(p);
      if (received.has(p) && !resumed) mustResend.push(p);
    }
    // The lost bytes are forgotten: from here both sides count from the destination's figure.
    this.bulkOffset = bulkBytes;
    if (!resumed) {
      // The switchover was lost: send it again, now also dropping held copies that are out of date.
      const merged = new Set<number>([...this.stale, ...mustResend]);
      this.stale = Uint32Array.from([...merged].sort((a, b) => a - b));
      this.switchoverSent = false;
    }
    this.pending = this.unsentPages();
    this.cursor = 0;
    this.metrics.phase = this.postcopy ? "postcopy" : "switchover";
    if (this.stage === "pausing") return; // the switchover goes out once the guest has paused
    if (this.postcopy) {
      this.stage = "postcopy";
      if (!resumed && this.linkUp) this.sendSwitchover();
    } else {
      this.stage = resumed ? "draining" : "stopcopy";
    }
  }

  private onCancel(reason: string): void {
    if (this.stage === "done") {
      this.out.push({ kind: "refused", reason: `the migration has already ended: ${this.metrics.reason}` });
      return;
    }
    if (this.committed) {
      this.out.push({
        kind: "refused",
        reason: "past switchover the destination guest owns the VM: the migration can only complete or be recovered",
      });
      return;
    }
    if (this.stage !== "idle") this.send("bulk", { type: "cancel", reason });
    this.abandon("cancelled", `cancelled: ${reason}; the source guest keeps running`);
  }

  // ---------------------------------------------------------- pre-copy rounds

  private startRound(): void {
    this.round = { startedAt: this.now, pages: 0, bytes: 0 };
    this.cursor = 0;
  }

  private endRound(): void {
    this.metrics.rounds.push({ pages: this.round.pages, bytes: this.round.bytes, ms: (this.now - this.round.startedAt) / 1000 });
    const dirty = this.guest.collectDirty();
    for (const p of dirty) {
      this.sent.clear(p);
      this.pending.set(p);
    }
    const rounds = this.metrics.rounds.length;
    const remainingBytes = dirty.length * (this.layout.pageSize + PAGE_ENTRY_OVERHEAD);
    if (remainingBytes <= this.bandwidth() * this.opts.downtimeLimitMs * 1000) {
      return this.beginSwitchover(this.metrics.throttle > 0 ? "converged-throttled" : "converged");
    }
    if (this.opts.mode === "hybrid") {
      if (rounds >= this.opts.hybridRounds) return this.beginSwitchover("hybrid-rounds");
      // Another round would be hardly smaller than this one: go post-copy now.
      if (dirty.length >= STALLED_SHARE * this.round.pages) return this.beginSwitchover("hybrid-stalled");
    } else if (rounds >= this.opts.maxRounds) {
      return this.beginSwitchover("round-cap");
    } else if (this.opts.autoConverge) {
      this.autoConverge(remainingBytes);
    }
    this.startRound();
  }

  /** Throttle harder when the guest dirtied more than half of what a round sent, twice running. */
  private autoConverge(dirtyBytes: number): void {
    this.busyRounds = dirtyBytes > 0.5 * this.round.bytes ? this.busyRounds + 1 : 0;
    if (this.busyRounds < 2) return;
    this.busyRounds = 0;
    const t = this.metrics.throttle;
    const next = t === 0 ? this.opts.throttleInitial : Math.min(this.opts.throttleMax, t + this.opts.throttleStep);
    if (next === t) return;
    this.metrics.throttle = next;
    this.out.push({ kind: "throttleGuest", ratio: next });
  }

  /** Measured bulk throughput in bytes per µs (unlimited until something was measured). */
  private bandwidth(): number {
    const { bytes, busyUs } = this.throughput;
    return busyUs > 0 ? bytes / busyUs : Infinity;
  }

  // --------------------------------------------------------------- switchover

  private beginSwitchover(reason: SwitchoverReason): void {
    this.metrics.switchoverReason = reason;
    this.postcopy = this.opts.mode !== "precopy" && reason !== "converged" && reason !== "converged-throttled";
    this.committed = true;
    this.stage = "pausing";
    this.metrics.phase = "switchover";
    this.metrics.pausedAt = this.now;
    this.out.push({ kind: "pauseGuest" });
  }

  private sendSwitchover(): void {
    // Post-copy: the destination drops the stale pages and resumes at once.
    // Pre-copy: fresh copies of those pages went ahead of this message.
    const stale = this.postcopy ? this.stale : new Uint32Array(0);
    this.send("bulk", { type: "switchover", stale, cpuState: this.cpuState ?? new Uint8Array(0) });
    this.switchoverSent = true;
  }

  private unsentPages(): Bitmap {
    const b = Bitmap.full(this.layout.pageCount);
    for (const p of this.sent) b.clear(p);
    return b;
  }

  // ----------------------------------------------------------------- transmit

  /** Sends what the current stage and the flow-control windows allow. */
  private pump(): void {
    if (!this.linkUp || this.awaitingRecover) return;
    switch (this.stage) {
      case "precopy":
        // A round ends once its pages have all left: only then does the dirty
        // log cover everything written while they were on their way.
        while (this.stage === "precopy") {
          this.pushPages(() => this.nextInOrder());
          if (this.pending.count > 0 || this.queued.bulk > 0) return;
          this.endRound();
        }
        return;
      case "stopcopy":
        this.pushPages(() => this.nextInOrder());
        if (this.pending.count === 0) {
          this.sendSwitchover();
          this.stage = "draining";
        }
        return;
      case "postcopy":
        if (!this.switchoverSent) this.sendSwitchover();
        this.serveRequests();
        this.pushPages(() => this.order.next(this.pending));
        if (this.pending.count === 0) this.stage = "draining";
        return;
      case "draining":
        this.serveRequests();
        return;
      default:
        return;
    }
  }

  private nextInOrder(): number {
    const p = this.pending.nextSet(this.cursor);
    if (p >= 0) this.cursor = p + 1;
    return p;
  }

  private serveRequests(): void {
    const channel: Channel = this.opts.urgentChannel && this.peerCapabilities & Capability.UrgentChannel ? "urgent" : "bulk";
    for (const page of this.requests) {
      this.order.onFault(page);
      if (this.sent.has(page)) {
        // Already on its way (or there): that copy answers the request.
        this.metrics.requestsAlreadySent++;
        continue;
      }
      this.pending.clear(page);
      this.metrics.requestsServed++;
      this.send(channel, { type: "pages", pages: [this.takePage(page, channel)] });
    }
    this.requests.length = 0;
  }

  private pushPages(next: () => number): void {
    const worstBatch = 4 + this.opts.batchPages * (PAGE_ENTRY_OVERHEAD + this.layout.pageSize);
    const window = this.committed ? this.opts.postcopyWindowBytes : this.opts.bulkWindowBytes;
    while (this.pending.count > 0 && this.queued.bulk < window && this.capAllows(worstBatch)) {
      const batch: PageEntry<P>[] = [];
      while (batch.length < this.opts.batchPages) {
        const p = next();
        if (p < 0) break;
        this.pending.clear(p);
        batch.push(this.takePage(p, "bulk"));
      }
      if (batch.length === 0) return;
      const msg: Message<P> = { type: "pages", pages: batch };
      const bytes = encodedSize(msg, this.layout.pageSize);
      this.spendCap(bytes);
      if (this.stage === "precopy") {
        this.round.pages += batch.length;
        this.round.bytes += bytes;
      } else if (this.postcopy) {
        this.metrics.postcopyPushedPages += batch.length;
        this.metrics.postcopyBulkBytes += bytes;
      }
      this.send("bulk", msg);
    }
  }

  /** Reads a page for sending and counts it; the caller sends it next, on `channel`. */
  private takePage(page: number, channel: Channel): PageEntry<P> {
    const data = this.guest.readPage(page);
    const m = this.metrics;
    m.pagesSent++;
    if (data === null) m.pagesZero++;
    if (!this.everSent.set(page)) m.pagesResent++;
    this.sent.set(page);
    // The offset of the message this page goes in: bulk sends are FIFO, so
    // the destination's received-bulk count tells whether it arrived.
    this.sentAtOffset[page] = channel === "bulk" ? this.bulkOffset : NOT_ON_BULK;
    return { page, data };
  }

  /** Token bucket for the bandwidth cap (bulk pages only; demand replies are never held back). */
  private capAllows(bytes: number): boolean {
    const rate = this.opts.bandwidthCap / 1e6; // bytes per µs
    if (rate <= 0) return true;
    const burst = Math.max(this.opts.bulkWindowBytes, bytes);
    this.cap.tokens = Math.min(burst, this.cap.tokens + (this.now - this.cap.at) * rate);
    this.cap.at = this.now;
    if (this.cap.tokens >= bytes) return true;
    const at = this.now + Math.ceil((bytes - this.cap.tokens) / rate);
    if (this.cap.timerAt !== at) {
      this.cap.timerAt = at;
      this.out.push({ kind: "setTimer", at });
    }
    return false;
  }

  private spendCap(bytes: number): void {
    if (this.opts.bandwidthCap > 0) this.cap.tokens -= bytes;
  }

  private send(channel: Channel, msg: Message<P>): void {
    const bytes = encodedSize(msg, this.layout.pageSize);
    this.queued[channel] += bytes;
    this.metrics.bytesSent[channel] += bytes;
    if (channel === "bulk") this.bulkOffset += bytes;
    this.out.push({ kind: "send", channel, msg });
  }

  // ------------------------------------------------------------------ endings

  private protocolError(reason: string): void {
    this.fail(reason, ErrorCode.Protocol);
  }

  /** A failure: before switchover the source guest runs on; after it, it stays paused for recovery. */
  private fail(reason: string, code: number | null): void {
    if (code !== null && this.linkUp) this.send("urgent", { type: "error", code, reason });
    if (this.committed) this.finish("failed", `${reason}; the source guest stays paused and keeps every page, for recovery`);
    else this.abandon("failed", `${reason}; the source guest keeps running`);
  }

  /** Ends a migration that never switched over: the source guest runs on, unthrottled. */
  private abandon(outcome: "failed" | "cancelled", reason: string): void {
    if (this.metrics.throttle > 0) {
      this.metrics.throttle = 0;
      this.out.push({ kind: "throttleGuest", ratio: 0 });
    }
    this.finish(outcome, reason);
  }

  private finish(outcome: "completed" | "failed" | "cancelled", reason: string): void {
    if (this.stage === "done") return;
    this.stage = "done";
    const m = this.metrics;
    m.outcome = outcome;
    m.reason = reason;
    m.finishedAt = this.now;
    m.phase = outcome === "completed" ? "complete" : outcome;
    if (outcome === "completed") this.out.push({ kind: "releasePages", count: this.layout.pageCount });
    this.out.push({ kind: "finished", outcome, reason });
  }
}
