/**
 * The source's pre-copy: rounds (each a pass over the pages pending at its
 * start, then the dirty log and the switchover policy's word), the ascending
 * order that rounds and stop-and-copy take pages in, and the background
 * batch both pre-copy and post-copy's push are made of. `Source`
 * (source.ts) adds the driver API, the messages it answers and the
 * switchover; `SourceCore` (source-core.ts) the state, failure and recovery.
 *
 * Stop-and-copy's pages come from a list when the ledger can give one
 * (`useList`): every page sent once, so what the destination lacks is the
 * stale list, made from the pages dirtied since, not from a walk of every
 * word of the guest, which the ascending scan of the pending bitmap was
 * (0.25 ms at 8 GiB, 0.7 at 64 GiB inside the downtime:
 * bench/switchover-engine.ts). The list gives the same pages in the same
 * runs as the scan: it is ascending and holds every pending page.
 */
import type { SourceGuestPort } from "./events.js";
import type { Message } from "./messages.js";
import type { MigrationOptions } from "./options.js";
import type { PageRuns } from "./page-sender.js";
import type { SwitchoverReason } from "./report.js";
import { SourceCore, type Layout, type Stage } from "./source-core.js";
import type { StandbyConfig } from "./standby.js";
import { SwitchoverPolicy } from "./switchover.js";

export abstract class SourceRounds<P> extends SourceCore<P> {
  private readonly policy: SwitchoverPolicy;
  /** The page source of `batch` in ascending order, made once (one call per background message). */
  protected readonly inOrder: PageRuns & { runLength: number } = {
    runLength: 0,
    nextRun: (max) => this.nextRunInOrder(max),
  };
  /** The last batch made and its size, so that pulling it need not size it again. */
  protected batchMsg: Message<P> | null = null;
  protected batchBytes = 0;

  constructor(opts: MigrationOptions, layout: Layout, guest: SourceGuestPort<P>, standby: StandbyConfig | null) {
    super(opts, layout, guest, standby);
    this.policy = new SwitchoverPolicy(opts, layout.pageSize);
  }

  /** Pre-copy is over (converged, or out of rounds): pause for the switchover. */
  protected abstract beginSwitchover(reason: SwitchoverReason, now: number): void;

  protected precopyBatch(now: number): Message<P> | null {
    // A round ends once its last page is read: the dirty log from then on
    // covers every write made after a page was read.
    for (;;) {
      if (this.stage.name !== "precopy") return null;
      const batch = this.batch(this.inOrder, now, true);
      if (batch !== null || this.ledger.pending.count > 0) return batch;
      this.endRound(now);
    }
  }

  /** A background batch for the bulk lane, booked to the round or the post-copy push; null when paced or none is left. */
  protected batch(runs: PageRuns, now: number, paced: boolean): Message<P> | null {
    const b = this.sender.batch(runs, now, paced);
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

  /**
   * Stop-and-copy: take the pending pages from the ledger's list of them
   * when it has one (null: it has not; the scan it is). Ascending from the
   * cursor either way.
   */
  protected useList(list: Uint32Array | null): void {
    this.ascendingList = list;
    this.listAt = 0;
  }

  /** Ascending from the cursor, without wrapping: the run of pending pages there (at most `max`). */
  private nextRunInOrder(max: number): number {
    if (this.ascendingList !== null) return this.nextRunInList(this.ascendingList, max);
    const pending = this.ledger.pending;
    const p = pending.nextSet(this.cursor);
    if (p < 0) return -1;
    const n = pending.runFrom(p, max);
    this.inOrder.runLength = n;
    this.cursor = p + n;
    return p;
  }

  /** nextRunInOrder from a list that is ascending and holds every pending page (a page not listed is not pending). */
  private nextRunInList(list: Uint32Array, max: number): number {
    const pending = this.ledger.pending;
    let i = this.listAt;
    while (i < list.length && (list[i] < this.cursor || !pending.has(list[i]))) i++;
    if (i === list.length) {
      this.listAt = i;
      return -1;
    }
    const p = list[i];
    let n = 1;
    while (n < max && i + n < list.length && list[i + n] === p + n && pending.has(p + n)) n++;
    this.listAt = i + n;
    this.inOrder.runLength = n;
    this.cursor = p + n;
    return p;
  }

  protected startRound(now: number): void {
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
      downtimeTargetMs: this.policy.targetDowntimeMs,
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
}
