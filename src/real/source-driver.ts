/**
 * Drives a Source engine for real: its events come from the TCP link (frames,
 * write completions, link failures), the guest (paused) and timers; its
 * actions become socket writes, guest control calls and timers. Like the
 * simulator's driver, but with the wall clock and real effects.
 *
 * A failed link is recovered only once the source is committed (past
 * switchover): before that the engine abandons the migration and the source
 * guest runs on. The destination's `report` messages (progress, final) are
 * for this driver, not the engine.
 */
import type { SourceAction, SourceEvent } from "../engine/events.js";
import type { Message } from "../engine/messages.js";
import { emptyDestinationMetrics, type DestinationMetrics } from "../engine/metrics.js";
import type { MigrationOptions } from "../engine/options.js";
import { Source } from "../engine/source.js";
import { nowUs } from "./clock.js";
import { messageOf } from "./errors.js";
import type { GuestProcess } from "./guest-process.js";
import { restoreVcpus } from "./guest-spawn.js";
import { punchHole } from "./native.js";
import { parseDestReport, type FinalReport } from "./report-msg.js";
import type { SourceLink } from "./source-link.js";
import { SourceMemoryPort } from "./source-port.js";

export interface DriverEnd {
  outcome: "completed" | "cancelled" | "failed";
  reason: string;
}

export interface SourceDriverOptions {
  setupTimeoutMs: number;
  /** Tests and demos: break the link once this many bulk bytes went out after switchover. */
  breakLinkAfterPostcopyBytes?: number;
  log: (line: string) => void;
}

export class SourceDriver {
  readonly engine: Source<Uint8Array>;
  /** The destination's metrics as last reported (progress reports, then the final one). */
  remote: DestinationMetrics = emptyDestinationMetrics();
  remoteSteps: { at: number; steps: number } | null = null;
  notice: string | null = null;
  final: FinalReport | null = null;
  private readonly port: SourceMemoryPort;
  private timer: NodeJS.Timeout | undefined;
  private setupTimer: NodeJS.Timeout | undefined;
  private linkReason: string | null = null;
  private refusal: string | null = null;
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
    private readonly opts: MigrationOptions,
    private readonly dopts: SourceDriverOptions,
  ) {
    const { pageSize, memBytes } = guest.layout;
    this.port = new SourceMemoryPort(guest, opts.mode !== "postcopy");
    this.engine = new Source<Uint8Array>(opts, { pageSize, pageCount: memBytes / pageSize }, this.port);
    this.ended = new Promise((r) => (this.resolveEnd = r));
    this.finalReport = new Promise((r) => (this.resolveFinal = r));
  }

  get done(): boolean {
    return this.end !== null;
  }

  /** Link handlers, for the SourceLink constructor. */
  onMessage(msg: Message<Uint8Array>): void {
    if (msg.type === "report") return this.onReport(msg.json);
    this.dispatch({ kind: "message", msg });
  }

  onTransmitted(channel: "urgent" | "bulk", bytes: number): void {
    this.dispatch({ kind: "transmitted", channel, bytes });
  }

  onLinkDown(reason: string): void {
    this.linkReason = reason;
    if (this.end === null) this.dopts.log(`link down: ${reason}`);
    this.dispatch({ kind: "linkDown" });
    if (this.end !== null) {
      this.resolveFinal(`the link to the destination failed before its report came: ${reason}`);
      return;
    }
    void this.link.reconnect(this.dopts.log).then((ok) => {
      if (ok) {
        this.notice = "link re-established; recovering";
        this.dispatch({ kind: "linkUp" });
      } else if (this.end === null) {
        this.finish("failed", `link lost (${reason}) and not re-established; the source guest stays paused and keeps every page, for recovery`);
      }
    });
  }

  start(): void {
    this.setupTimer = setTimeout(() => {
      if (this.engine.metrics.setupDoneAt === null && this.end === null) {
        this.link.breakLink(`the destination did not answer the handshake within ${this.dopts.setupTimeoutMs} ms`);
      }
    }, this.dopts.setupTimeoutMs);
    this.dispatch({ kind: "start" });
  }

  /** null if cancelled, else why not. */
  cancel(reason: string): string | null {
    this.refusal = null;
    this.dispatch({ kind: "cancel", reason });
    const r = this.refusal as string | null;
    this.notice = r === null ? `cancelled: ${reason}` : `cancel refused: ${r}`;
    return r;
  }

  close(): void {
    clearTimeout(this.timer);
    clearTimeout(this.setupTimer);
    this.port.close();
    this.resolveFinal("the source closed before the destination's report came");
  }

  private dispatch(ev: SourceEvent<Uint8Array>): void {
    const actions = this.engine.handle(ev, nowUs());
    for (const a of actions) this.execute(a);
  }

  private execute(a: SourceAction<Uint8Array>): void {
    switch (a.kind) {
      case "send":
        this.link.send(a.channel, a.msg, this.guest.layout.pageSize);
        this.maybeBreak();
        return;
      case "pauseGuest":
        restoreVcpus(this.guest);
        this.guest.pause().then(
          (cpuState) => this.dispatch({ kind: "guestPaused", cpuState }),
          (e: unknown) => this.finish("failed", `pausing the source guest failed: ${messageOf(e)}`),
        );
        return;
      case "resumeGuest":
        void this.guest.resume().catch((e: unknown) => this.dopts.log(`resuming the source guest failed: ${messageOf(e)}`));
        return;
      case "throttleGuest":
        void this.guest.throttle(a.ratio).catch((e: unknown) => this.dopts.log(`throttling the source guest failed: ${messageOf(e)}`));
        return;
      case "setTimer":
        clearTimeout(this.timer);
        this.timer = setTimeout(() => this.dispatch({ kind: "timer" }), Math.max(0, (a.at - nowUs()) / 1000));
        return;
      case "releasePages":
        // Every page is at the destination: the source's copy of RAM is no longer needed.
        if (a.count === this.engine.metrics.pageCount) punchHole(this.guest.memfd, 0, this.guest.layout.memBytes);
        return;
      case "finished": {
        const linkLost = a.reason.startsWith("link lost") && this.linkReason !== null;
        this.finish(a.outcome, linkLost ? `${this.linkReason}; ${a.reason}` : a.reason);
        return;
      }
      case "refused":
        this.refusal = a.reason;
        return;
    }
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
    } else if (r.kind === "final") {
      this.remote = r.metrics;
      this.final = r;
      this.resolveFinal(r);
    } else {
      this.resolveFinal(`the destination failed: ${r.reason}`);
    }
  }

  private finish(outcome: DriverEnd["outcome"], reason: string): void {
    if (this.end !== null) return;
    clearTimeout(this.setupTimer);
    clearTimeout(this.timer);
    this.end = { outcome, reason };
    this.notice = `${outcome}: ${reason}`;
    if (outcome !== "completed") this.resolveFinal(reason);
    this.resolveEnd(this.end);
  }
}
