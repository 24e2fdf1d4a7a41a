/**
 * When pre-copy (and hybrid's pre-copy) stops: after each round, from what
 * the round sent, what the guest dirtied meanwhile and the measured bulk
 * bandwidth, either switch over (with why) or go on — perhaps throttling the
 * guest harder (auto-converge).
 */
import { PAGE_ENTRY_OVERHEAD } from "./codec.js";
import type { MigrationOptions } from "./options.js";
import type { SwitchoverReason } from "./report.js";

/** Hybrid goes post-copy once a round's dirty set is at least this share of the pages the round sent. */
export const STALLED_SHARE = 0.9;

export interface RoundEnd {
  /** Rounds done, this one included. */
  rounds: number;
  roundPages: number;
  roundBytes: number;
  /** Pages written during the round: the next round's pages. */
  dirtyPages: number;
  /** Measured bulk bandwidth, bytes per µs (Infinity when nothing was measured yet). */
  bytesPerUs: number;
  throttle: number;
}

export type Decision = { kind: "switch"; reason: SwitchoverReason } | { kind: "continue"; throttle: number | null };

export class SwitchoverPolicy {
  private busyRounds = 0;

  constructor(
    private readonly opts: MigrationOptions,
    private readonly pageSize: number,
  ) {}

  /** Bytes the remaining dirty pages take on the wire. */
  remainingBytes(dirtyPages: number): number {
    return dirtyPages * (this.pageSize + PAGE_ENTRY_OVERHEAD);
  }

  /** How long sending `dirtyPages` would keep the guest paused at this bandwidth, ms. */
  expectedDowntimeMs(dirtyPages: number, bytesPerUs: number): number {
    return bytesPerUs === Infinity ? 0 : this.remainingBytes(dirtyPages) / bytesPerUs / 1000;
  }

  /** The estimate a switch needs: the limit less its margin (MigrationOptions.downtimeMargin). */
  get targetDowntimeMs(): number {
    return this.opts.downtimeLimitMs * (1 - this.opts.downtimeMargin);
  }

  afterRound(r: RoundEnd): Decision {
    if (this.expectedDowntimeMs(r.dirtyPages, r.bytesPerUs) <= this.targetDowntimeMs) {
      return { kind: "switch", reason: r.throttle > 0 ? "converged-throttled" : "converged" };
    }
    if (this.opts.mode === "hybrid") {
      if (r.rounds >= this.opts.hybridRounds) return { kind: "switch", reason: "hybrid-rounds" };
      // Another round would be hardly smaller than this one: go post-copy now.
      if (r.dirtyPages >= STALLED_SHARE * r.roundPages) return { kind: "switch", reason: "hybrid-stalled" };
      return { kind: "continue", throttle: null };
    }
    if (r.rounds >= this.opts.maxRounds) return { kind: "switch", reason: "round-cap" };
    return { kind: "continue", throttle: this.opts.autoConverge ? this.autoConverge(r) : null };
  }

  /** Throttle harder when the guest dirtied more than half of what a round sent, twice running. */
  private autoConverge(r: RoundEnd): number | null {
    this.busyRounds = this.remainingBytes(r.dirtyPages) > 0.5 * r.roundBytes ? this.busyRounds + 1 : 0;
    if (this.busyRounds < 2) return null;
    this.busyRounds = 0;
    const t = r.throttle;
    const next = t === 0 ? this.opts.throttleInitial : Math.min(this.opts.throttleMax, t + this.opts.throttleStep);
    return next === t ? null : next;
  }
}
