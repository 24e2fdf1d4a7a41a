/**
 * The source's state, and how a migration ends or recovers: failures before
 * and past the pause (whether the source may resume its guest), the link lost
 * and recovered in the committed stage, and the end itself. `Source`
 * (source.ts) adds the driver API, the messages it answers and page
 * selection, `SourceRounds` (source-rounds.ts) pre-copy's rounds; this
 * file is the committed stage's failure and recovery half, kept apart so
 * that each reads in one sitting.
 */
import { Bitmap } from "./bitmap.js";
import { EndCause, type Outcome, type SourceAction, type SourceGuestPort } from "./events.js";
import { PageLedger } from "./ledger.js";
import { ErrorCode, type Channel, type Message } from "./messages.js";
import { newSourceMetrics, type SourceMetrics } from "./metrics.js";
import { batchPagesFor, type MigrationOptions } from "./options.js";
import { Pacer } from "./pacer.js";
import { PageSender } from "./page-sender.js";
import type { Phase } from "./report.js";
import { StandbyPlan, type StandbyConfig } from "./standby.js";
import { ThroughputEstimator } from "./throughput.js";
import { TimerTable } from "./timers.js";

export interface Layout {
  pageSize: number;
  pageCount: number;
}

export interface Round {
  startedAt: number;
  pages: number;
  bytes: number;
}

/** Past the pause: what the source has committed to. */
export interface Committed {
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

export type Stage =
  | { name: "idle" }
  | { name: "setup" }
  | { name: "precopy"; round: Round }
  | ({ name: "committed" } & Committed)
  | { name: "done" };

export type Timer = "setup" | "reconnect" | "pace";

/** Whether a failure is the destination's own word that it stopped (see `fail`). */
export type PeerStopped = "no" | "unconfirmed" | "certain";

export abstract class SourceCore<P> {
  readonly metrics: SourceMetrics;
  protected stage: Stage = { name: "idle" };
  protected readonly actions: SourceAction[] = [];
  protected readonly outbox: Record<Channel, Message<P>[]> = { urgent: [], bulk: [] };
  protected readonly ledger: PageLedger;
  protected readonly pacer: Pacer;
  protected readonly throughput = new ThroughputEstimator();
  protected readonly timers = new TimerTable<Timer>();
  protected cursor = 0;
  /** Stop-and-copy's pending pages as an ascending list, and how far it was taken (source-rounds.ts `useList`); null: scan the bitmap. */
  protected ascendingList: Uint32Array | null = null;
  protected listAt = 0;
  protected readonly sender: PageSender<P>;
  /** The standby copy's plan (issue 16), when the source keeps one. */
  protected readonly standby: StandbyPlan | null;

  constructor(
    protected readonly opts: MigrationOptions,
    protected readonly layout: Layout,
    protected readonly guest: SourceGuestPort<P>,
    standby: StandbyConfig | null,
  ) {
    if (!(layout.pageCount > 0 && layout.pageCount < 2 ** 32)) throw new RangeError(`page count must be in 1..2^32-1, got ${layout.pageCount}`);
    this.ledger = new PageLedger(layout.pageCount);
    this.pacer = new Pacer(opts.bandwidthCap, opts.laneWindowBytes);
    this.metrics = newSourceMetrics(opts.mode, layout);
    this.sender = new PageSender(layout.pageSize, batchPagesFor(opts, layout.pageSize), guest, this.ledger, this.metrics, this.pacer);
    // Without dirty tracking before switchover (pure post-copy) the copy starts at switchover.
    this.standby = standby === null ? null : new StandbyPlan(layout.pageCount, standby, opts.mode !== "postcopy");
  }

  protected onLinkDown(now: number): void {
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

  protected onRecover(resumed: boolean, bulkBytes: number, receivedBytes: Uint8Array, now: number): void {
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
    // Pages lost in flight are pending again and are not in the list.
    this.ascendingList = null;
    if (s.switchover !== null && !resumed) {
      // The switchover was lost: send it again, now also dropping held copies that are out of date.
      const merged = new Set<number>([...s.switchover.stale, ...mustDrop]);
      s.switchover.stale = Uint32Array.from([...merged].sort((a, b) => a - b));
      s.switchover.sent = false;
    }
    if (s.step !== "pausing") s.step = s.postcopy ? "pushing" : resumed ? "draining" : "stopcopy";
    this.setStage(s);
  }

  protected queue(channel: Channel, msg: Message<P>): void {
    this.outbox[channel].push(msg);
  }

  protected protocolError(reason: string, now: number): void {
    this.fail(EndCause.ProtocolError, reason, ErrorCode.Protocol, now);
  }

  /**
   * A failure: before the pause the source guest runs on; past it, the source
   * resumes its guest while the destination's cannot have run, else it stays
   * paused and keeps every page. `peerStopped`: the destination itself
   * reported it — "unconfirmed": it stopped without running its guest unless
   * it had taken the switchover; "certain": it says its guest never ran.
   */
  protected fail(cause: EndCause, reason: string, code: number | null, now: number, peerStopped: PeerStopped = "no"): void {
    const s = this.stage;
    if (s.name === "done") return;
    const linkUp = s.name !== "committed" || s.link === "up";
    if (code !== null && linkUp) this.queue("urgent", { type: "error", code, reason });
    if (s.name !== "committed") return this.abandon("failed", cause, `${reason}; the source guest keeps running`, now);
    if (this.mayResume(s, peerStopped)) return this.resumeHere(cause, reason, now);
    this.finish("failed", cause, `${reason}; ${this.pausedTail(s)}`, now);
  }

  /** Whether the destination's guest cannot have run, so the source may take the VM back. */
  protected mayResume(s: Committed, peerStopped: PeerStopped): boolean {
    if (peerStopped === "certain") return true;
    if (s.destResumed) return false;
    return s.switchover === null || !s.switchover.sent || peerStopped === "unconfirmed";
  }

  /** Before the point of no return: the source guest runs again; failed, not lost. */
  protected resumeHere(cause: EndCause, why: string, now: number): void {
    this.actions.push({ kind: "resumeGuest" });
    const reason = `${why} (${cause}); the destination guest never ran, so the source guest resumed and keeps running (failed, not lost)`;
    this.abandon("failed", EndCause.ResumedAtSource, reason, now);
  }

  protected onReconnectTimeout(s: Committed, now: number): void {
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

  protected pausedTail(s: Committed): string {
    return s.destResumed
      ? "the destination guest runs; the source guest stays paused and keeps every page, for recovery"
      : "the switchover was sent and not confirmed, so the source guest stays paused and keeps every page";
  }

  /** Ends a migration that never switched over: the source guest runs on, unthrottled. */
  protected abandon(outcome: "failed" | "cancelled", cause: EndCause, reason: string, now: number): void {
    if (this.metrics.throttle > 0) {
      this.metrics.throttle = 0;
      this.actions.push({ kind: "throttleGuest", ratio: 0 });
    }
    this.finish(outcome, cause, reason, now);
  }

  protected finish(outcome: Outcome, cause: EndCause, reason: string, now: number): void {
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
  protected setStage(s: Stage): void {
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
