/**
 * The destination side of a migration: pure and synchronous, like the source.
 *
 * It learns the layout from the handshake, installs pages as they come, drops
 * stale ones at switchover and resumes the guest — and tells the source only
 * once the driver says the guest runs (`guestResumed`): until then the source
 * may take the VM back (the point of no return, docs/engine.md). From then on it turns each
 * vCPU fault on a missing page into one urgent request (however many vCPUs
 * wait on that page) and wakes the waiters when the page is installed. After a
 * broken link it tells the source what it holds and re-sends its requests.
 *
 * The driving contract is the source's (see source.ts): inputs through
 * `handle` / `handleTimeout`, then `pollAction` and `pollTransmit` per lane
 * until null, then `pollTimeout`.
 */
import type { Bitmap } from "./bitmap.js";
import { encodedSize } from "./codec.js";
import { EndCause, type DestinationAction, type DestinationInput, type Outcome } from "./events.js";
import { ALL_CAPABILITIES, Capability, ErrorCode, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION, type Channel, type HelloMsg, type Message, type PageBatch } from "./messages.js";
import { emptyDestinationMetrics, type DestinationMetrics } from "./metrics.js";
import type { MigrationOptions } from "./options.js";
import type { Layout } from "./source.js";
import { DestinationPages } from "./dest-pages.js";
import { FillFromStandby, type StandbyFill } from "./standby-fill.js";

export type { StandbyFill } from "./standby-fill.js";

/** "resuming": the switchover was taken and the guest asked to run; the driver has not confirmed it yet. */
type Stage = "awaitingHello" | "receiving" | "resuming" | "running" | "complete" | "done";

export interface DestinationConfig {
  /** When set, a source proposing another layout is refused. */
  expect?: Layout;
  /** Largest guest this destination accepts, in bytes. */
  maxMemBytes?: number;
  /** The source keeps a standby copy this destination can read: a dead source's missing pages come from it. */
  standby?: boolean;
}

export class Destination<P> {
  readonly metrics: DestinationMetrics;
  private stage: Stage = "awaitingHello";
  private now = 0;
  private readonly actions: DestinationAction<P>[] = [];
  private readonly outbox: Record<Channel, Message<P>[]> = { urgent: [], bulk: [] };
  /** When the link broke, the deadline for it to come back (null while up). */
  private reconnectBy: number | null = null;
  private layout: Layout | null = null;
  /** What guest memory holds and which pages vCPUs wait on (none before the handshake). */
  private pages: DestinationPages;
  private urgentCapable = false;
  private linkUp = true;
  private bulkBytes = 0;
  /** Begun once the source is given up for dead and the standby copy is read (standby-fill.ts). */
  private readonly standby = new FillFromStandby();
  /** Sent again on every reconnection after we ended: the source must hear that our guest never ran. */
  private farewell: Message<P> | null = null;

  constructor(
    private readonly opts: MigrationOptions,
    private readonly config: DestinationConfig = {},
  ) {
    this.metrics = emptyDestinationMetrics();
    this.pages = new DestinationPages(0, this.metrics);
  }

  get finished(): boolean {
    return this.stage === "done" || this.stage === "complete";
  }

  /** The layout agreed in the handshake, once known. */
  get memoryLayout(): Layout | null {
    return this.layout;
  }

  /** The standby fill, once begun. */
  get standbyFill(): StandbyFill | null {
    return this.standby.fill;
  }

  /** Pages in guest memory that are not in `known` (same page count), ascending; none before the handshake. */
  presentBeyond(known: Bitmap): Uint32Array {
    const present = this.pages.present;
    return present.size === known.size ? present.minus(known) : new Uint32Array(0);
  }

  /** Whether the page is in guest memory (for drivers that check before stalling a vCPU). */
  isPresent(page: number): boolean {
    return this.pages.present.has(page);
  }

  handle(ev: DestinationInput<P>, now: number): void {
    this.now = now;
    switch (ev.kind) {
      case "message":
        if (ev.channel === "bulk") this.bulkBytes += (ev.msg.type === "pages" ? ev.msg.wireBytes : undefined) ?? encodedSize(ev.msg, this.layout?.pageSize ?? 0);
        return this.onMessage(ev.msg);
      case "fault":
        return this.onFault(ev.page, ev.vcpu, ev.requested === true, Math.min(now, ev.at ?? now));
      case "guestResumed":
        return this.onGuestResumed();
      case "resumeFailed": {
        if (this.stage !== "resuming") return;
        const reason = `the destination could not start its guest: ${ev.reason}`;
        this.farewell = { type: "error", code: ErrorCode.ResumeFailed, reason };
        return this.refuse(ErrorCode.ResumeFailed, reason, EndCause.ResumeFailed);
      }
      case "linkDown":
        if (this.linkUp && !this.finished) this.reconnectBy = now + this.opts.reconnectTimeoutMs * 1000;
        this.linkUp = false;
        // What would have gone out is rebuilt at recovery.
        this.outbox.urgent.length = 0;
        this.outbox.bulk.length = 0;
        if (!this.finished) this.metrics.phase = "recovering";
        return;
      case "linkUp":
        return this.onLinkUp();
      case "malformed":
        return this.protocolError(`the source sent bytes that do not decode: ${ev.reason}`);
      case "standbyPages":
        if (!this.standby.reading || this.stage !== "running") return;
        this.standby.received(ev.batch.pages.length);
        return this.onPages(ev.batch);
      case "standbyEnd":
        return this.onStandbyEnd();
    }
  }

  handleTimeout(now: number): void {
    this.now = now;
    if (this.reconnectBy === null || now < this.reconnectBy || this.linkUp || this.finished) return;
    this.reconnectBy = null;
    if (this.fromStandby(`the source did not reconnect within ${this.opts.reconnectTimeoutMs / 1000} s`)) return;
    this.finish("failed", EndCause.ReconnectTimeout, `the source did not reconnect within ${this.opts.reconnectTimeoutMs / 1000} s`);
  }

  pollTimeout(): number | null {
    return this.linkUp || this.finished ? null : this.reconnectBy;
  }

  pollAction(): DestinationAction<P> | null {
    return this.actions.shift() ?? null;
  }

  /** The next message for this lane, which has room for one; null when there is none. */
  pollTransmit(channel: Channel, now: number): Message<P> | null {
    void now;
    const msg = this.outbox[channel].shift();
    if (msg === undefined) return null;
    this.metrics.bytesSent[channel] += encodedSize(msg, this.layout?.pageSize ?? 0);
    return msg;
  }

  // ----------------------------------------------------------------- messages

  private onMessage(msg: Message<P>): void {
    // Once finished, late arrivals (duplicates still in flight) change nothing.
    if (this.stage === "done" || this.stage === "complete") return;
    switch (msg.type) {
      case "hello":
        return this.onHello(msg);
      case "pages":
        if (this.stage === "awaitingHello") return this.protocolError(`pages before the handshake`);
        return this.onPages(msg);
      case "switchover":
        if (this.stage !== "receiving") return this.protocolError(`unexpected switchover in stage ${this.stage}`);
        return this.onSwitchover(msg.stale, msg.cpuState);
      case "cancel":
        if (this.guestMayRun) return this.protocolError(`cancel after switchover: ${msg.reason}`);
        return this.finish("cancelled", EndCause.PeerCancelled, `source cancelled: ${msg.reason}`);
      case "error":
        if (this.guestMayRun) {
          if (this.fromStandby(`the source reported error ${msg.code}: ${msg.reason}`)) return;
          // Our guest runs: giving up would lose the VM. Keep serving what we have; the operator recovers.
          this.metrics.phase = "failed";
          const reason = `source reported error ${msg.code}: ${msg.reason}; the destination guest keeps its pages`;
          this.actions.push({ kind: "finished", outcome: "failed", cause: EndCause.PeerError, reason });
          this.stage = "done";
          return;
        }
        return this.finish("failed", EndCause.PeerError, `source reported error ${msg.code}: ${msg.reason}`);
      default:
        return this.protocolError(`unexpected ${msg.type} message from the source`);
    }
  }

  private onHello(h: HelloMsg): void {
    if (this.stage !== "awaitingHello") return this.protocolError("a second hello");
    if (h.version < MIN_PROTOCOL_VERSION) {
      return this.refuse(ErrorCode.VersionMismatch, `source speaks protocol version ${h.version}; this destination needs ${MIN_PROTOCOL_VERSION}..${PROTOCOL_VERSION}`);
    }
    const { pageSize, pageCount } = h;
    if (!(pageSize >= 512 && (pageSize & (pageSize - 1)) === 0) || pageCount < 1) {
      return this.refuse(ErrorCode.BadLayout, `bad memory layout: ${pageCount} pages of ${pageSize} bytes`);
    }
    const e = this.config.expect;
    if (e && (e.pageSize !== pageSize || e.pageCount !== pageCount)) {
      return this.refuse(ErrorCode.BadLayout, `source proposes ${pageCount} pages of ${pageSize} bytes; this destination expects ${e.pageCount} of ${e.pageSize}`);
    }
    if (this.config.maxMemBytes !== undefined && pageSize * pageCount > this.config.maxMemBytes) {
      return this.refuse(ErrorCode.BadLayout, `source guest of ${pageSize * pageCount} bytes exceeds this destination's limit of ${this.config.maxMemBytes}`);
    }
    const capabilities = h.capabilities & ALL_CAPABILITIES;
    if (h.mode !== "precopy" && !(capabilities & Capability.Postcopy)) {
      return this.refuse(ErrorCode.Protocol, `mode ${h.mode} needs the post-copy capability, which the source did not offer`);
    }
    this.layout = { pageSize, pageCount };
    this.pages = new DestinationPages(pageCount, this.metrics);
    this.urgentCapable = (capabilities & Capability.UrgentChannel) !== 0;
    this.stage = "receiving";
    this.metrics.phase = h.mode === "postcopy" ? "setup" : "precopy";
    this.send("bulk", { type: "helloAck", version: Math.min(h.version, PROTOCOL_VERSION), capabilities });
  }

  private onPages(batch: PageBatch<P>): void {
    const count = this.layout!.pageCount;
    const pages = batch.pages;
    if (batch.data.length !== pages.length) return this.protocolError(`a pages batch of ${pages.length} page numbers carries ${batch.data.length} contents`);
    for (let i = 0; i < pages.length; i++) {
      const page = pages[i];
      if (!(page < count)) return this.protocolError(`page ${page} is beyond the guest's ${count} pages`);
    }
    // Resuming counts as running: the guest may already touch its pages.
    const install = this.pages.intake(batch, this.guestMayRun, this.now);
    if (install !== null) this.actions.push({ kind: "installPages", batch: install });
    this.completeIfWhole();
  }

  private onSwitchover(stale: Uint32Array, cpuState: Uint8Array): void {
    const count = this.layout!.pageCount;
    for (const p of stale) if (!(p < count)) return this.protocolError(`stale page ${p} is beyond the guest's ${count} pages`);
    if (stale.length > 0) {
      for (const p of stale) this.pages.drop(p);
      this.metrics.pagesDropped += stale.length;
      this.actions.push({ kind: "dropPages", pages: stale });
    }
    this.stage = "resuming";
    this.actions.push({ kind: "resumeGuest", cpuState });
  }

  private onGuestResumed(): void {
    if (this.stage !== "resuming") return;
    this.stage = "running";
    this.metrics.phase = this.pages.whole ? "complete" : "postcopy";
    this.metrics.resumedAt = this.now;
    // Urgent, and before any error we send from now on: the source learns the
    // guest ran before it hears of any later trouble.
    this.send("urgent", { type: "resumed" });
    this.completeIfWhole();
  }

  /** Whether the guest may be running (asked to resume, or confirmed). */
  private get guestMayRun(): boolean {
    return this.stage === "resuming" || this.stage === "running";
  }

  // ------------------------------------------------------------ standby copy

  /** The source is gone for good: with a standby copy, read every missing page from it. Whether it began. */
  private fromStandby(why: string): boolean {
    if (this.config.standby !== true || this.stage !== "running") return false;
    const missing = this.standby.begin(why, this.pages.present, this.layout!.pageCount);
    if (missing === null) return false;
    this.metrics.phase = "recovering";
    this.actions.push({ kind: "standbyRecover", missing });
    return true;
  }

  private onStandbyEnd(): void {
    if (!this.standby.reading || this.stage !== "running") return;
    // Whatever is still missing is lost: the copy did not hold it current and intact.
    const lost = this.standby.end(this.pages.present, this.layout!.pageCount);
    if (lost !== null) this.finish("failed", EndCause.VmLost, lost);
  }

  // ------------------------------------------------------------------- faults

  private onFault(page: number, vcpu: number, requested: boolean, at: number): void {
    if (this.stage === "done" || this.layout === null || !(page < this.layout.pageCount)) return;
    this.metrics.faultEvents++;
    const outcome = this.pages.fault(page, vcpu, at);
    if (outcome === "present") {
      this.actions.push({ kind: "wake", page });
      return;
    }
    if (outcome === "joined") return;
    this.metrics.demandFaults++;
    if (this.linkUp && !requested) this.request(page);
  }

  private request(page: number): void {
    this.send(this.requestChannel(), { type: "pageRequest", page });
  }

  private requestChannel(): Channel {
    return this.opts.urgentChannel && this.urgentCapable ? "urgent" : "bulk";
  }

  // ----------------------------------------------------------------- recovery

  private onLinkUp(): void {
    this.linkUp = true;
    this.reconnectBy = null;
    if (this.stage === "done" && this.farewell !== null) this.send(this.requestChannel(), this.farewell);
    if (this.stage !== "receiving" && this.stage !== "resuming" && this.stage !== "running" && this.stage !== "complete") return;
    if (this.stage === "running") this.metrics.phase = "postcopy";
    if (this.stage === "complete") this.metrics.phase = "complete";
    // The recover message goes first, on the channel our requests take, so
    // the source knows what we hold before it sees our repeated requests.
    this.send(this.requestChannel(), {
      type: "recover",
      // The switchover was taken (stale pages dropped; the guest runs or is
      // being started): the source may no longer resume its own.
      resumed: this.stage !== "receiving",
      bulkBytes: this.bulkBytes,
      received: this.pages.present.toBytes(),
    });
    // Our "resumed" may have been lost with the link (or never sent while it was down).
    if (this.stage === "running" || this.stage === "complete") this.send("urgent", { type: "resumed" });
    for (const page of this.pages.waitedFor()) this.request(page);
    // Our earlier "complete" may have been lost with the link.
    if (this.stage === "complete") this.send(this.requestChannel(), { type: "complete" });
  }

  // ------------------------------------------------------------------ helpers

  private completeIfWhole(): void {
    if (this.stage !== "running" || !this.pages.whole) return;
    this.stage = "complete";
    this.metrics.phase = "complete";
    this.metrics.completedAt = this.now;
    this.actions.push({ kind: "stopFaultHandling" });
    this.send("urgent", { type: "complete" });
    this.actions.push({ kind: "finished", outcome: "completed", cause: EndCause.Completed, reason: this.standby.completed() });
  }

  /** Queues while the link is up; what would go out while it is down is rebuilt at recovery. */
  private send(channel: Channel, msg: Message<P>): void {
    if (this.linkUp) this.outbox[channel].push(msg);
  }

  private refuse(code: number, reason: string, cause: EndCause = EndCause.Incompatible): void {
    this.send("bulk", { type: "error", code, reason });
    this.finish("failed", cause, reason);
  }

  private protocolError(reason: string): void {
    // Past the switchover an error must never overtake our "resumed" (the source would
    // take it for a destination that stopped before its guest ran): while resuming say
    // nothing; once complete, nothing is at stake.
    if (this.stage === "resuming" || this.stage === "complete" || this.stage === "done") return;
    if (this.stage === "running") {
      // Never abandon a running guest over a bad message: report it and carry on.
      this.send("urgent", { type: "error", code: ErrorCode.Protocol, reason });
      return;
    }
    this.refuse(ErrorCode.Protocol, reason, EndCause.ProtocolError);
  }

  private finish(outcome: Outcome, cause: EndCause, reason: string): void {
    if (this.stage === "done") return;
    this.stage = "done";
    this.metrics.phase = outcome === "completed" ? "complete" : outcome;
    this.actions.push({ kind: "finished", outcome, cause, reason });
  }
}

