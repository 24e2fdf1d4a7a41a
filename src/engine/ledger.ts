/**
 * What the source knows about where each page's current copy is: held by the
 * destination (or on its way there), or still to send; which pages were ever
 * sent (re-sends are counted, and stale copies found at switchover); and, for
 * each page whose newest copy went on the bulk channel, the bulk-stream
 * offset it went at. Bulk is FIFO, so after a broken link the destination's
 * count of bulk bytes received says exactly which of those copies arrived.
 *
 * The offsets are kept once per bulk message, not once per page: a page
 * holds the number of the message its newest copy went in (4 bytes; a
 * 1 TiB guest has 268 M pages and a message carries up to `batchPages`).
 */
import { Bitmap } from "./bitmap.js";
import type { Channel } from "./messages.js";

/** In `sentAtOffset` and `BulkOffsets.of`: a page whose newest copy went on the urgent channel, or none is in flight. */
export const NOT_ON_BULK = -1;

/** Where each page's newest bulk copy started in the bulk stream, or NOT_ON_BULK. */
export interface BulkOffsets {
  of(page: number): number;
}

export interface RecoverInput {
  /** Whether the destination had taken the switchover (and so dropped its stale copies). */
  resumed: boolean;
  /** Bulk bytes the destination took over the whole migration. */
  bulkBytes: number;
  received: Bitmap;
}

export class PageLedger {
  /** Pages of which the destination holds (or is being sent) a current copy. */
  sent: Bitmap;
  readonly everSent: Bitmap;
  /** Pages to send: this round's (pre-copy), or all not yet sent (after switchover). */
  pending: Bitmap;
  /** Per page: 1 + the index in `messageOffsets` of the bulk message its newest copy went in; 0: not on bulk. */
  private readonly sentIn: Uint32Array;
  /** The bulk offset at which each message that carried pages started (a new entry whenever the offset moved on). */
  private messageOffsets = new Float64Array(1024);
  private messages = 0;
  /** Bytes put on the bulk channel so far (as the destination will count them). */
  bulkOffset = 0;
  readonly offsets: BulkOffsets = { of: (page) => this.offsetOf(page) };

  constructor(readonly pageCount: number) {
    this.sent = new Bitmap(pageCount);
    this.everSent = new Bitmap(pageCount);
    this.pending = new Bitmap(pageCount);
    this.sentIn = new Uint32Array(pageCount);
  }

  /** A copy of `page` goes out now, in the message that starts at the current bulk offset (or on urgent). Returns whether it was sent before. */
  markSent(page: number, channel: Channel): boolean {
    this.pending.clear(page);
    this.sent.set(page);
    if (channel === "bulk") {
      // The pages of one message share its entry: the offset moves on only when a message is pulled.
      const n = this.messages;
      if (n === 0 || this.messageOffsets[n - 1] !== this.bulkOffset) this.addMessage(this.bulkOffset);
      this.sentIn[page] = this.messages;
    } else this.sentIn[page] = 0;
    return !this.everSent.set(page);
  }

  /**
   * `markSent` of pages first … first + count − 1 on the bulk channel, in one
   * booking: the same bits and entries, word by word. Returns how many of
   * them were sent before.
   */
  markSentRun(first: number, count: number): number {
    // A lone page (a later pre-copy round's scattered dirty pages): the page's way is cheaper.
    if (count === 1) return this.markSent(first, "bulk") ? 1 : 0;
    const end = first + count;
    this.pending.clearRange(first, end);
    this.sent.setRange(first, end);
    const n = this.messages;
    if (n === 0 || this.messageOffsets[n - 1] !== this.bulkOffset) this.addMessage(this.bulkOffset);
    const m = this.messages;
    const sentIn = this.sentIn;
    for (let p = first; p < end; p++) sentIn[p] = m;
    return count - this.everSent.setRange(first, end);
  }

  private addMessage(offset: number): void {
    if (this.messages === this.messageOffsets.length) {
      if (this.messages >= 0xffffffff) throw new RangeError("page ledger: more than 2^32 - 1 bulk messages");
      const grown = new Float64Array(Math.min(0xffffffff, this.messages * 2));
      grown.set(this.messageOffsets);
      this.messageOffsets = grown;
    }
    this.messageOffsets[this.messages++] = offset;
  }

  private offsetOf(page: number): number {
    const m = this.sentIn[page];
    return m === 0 ? NOT_ON_BULK : this.messageOffsets[m - 1];
  }

  /** The guest wrote these pages: whatever copy the destination has of them is out of date. */
  dirtied(pages: Uint32Array): void {
    for (const p of pages) {
      this.sent.clear(p);
      this.pending.set(p);
    }
  }

  /** Pages sent at least once whose current content the destination does not have. */
  stale(): Uint32Array {
    return this.everSent.minus(this.sent);
  }

  /** From now on, every page the destination lacks is pending. */
  pendAllUnsent(): void {
    this.pending = this.sent.complement();
  }

  /**
   * After a reconnection: what the destination holds, as far as the source can
   * vouch for it. Returns the pages the destination holds an out-of-date copy
   * of (its newest copy was lost in flight, or the page changed since), which
   * it must drop if it has not taken the switchover yet.
   */
  reconcile(r: RecoverInput): number[] {
    const { held, mustDrop } = reconcileHeld(this.sent, this.offsets, r);
    // Every copy at or past the destination's count is settled: lost (resent), or held (past the
    // switchover a received copy is current whichever connection brought it). Both forget the offset.
    for (let p = 0; p < this.pageCount; p++) {
      const m = this.sentIn[p];
      if (m !== 0 && this.messageOffsets[m - 1] >= r.bulkBytes) this.sentIn[p] = 0;
    }
    this.sent = held;
    // The lost bytes are forgotten: from here both sides count from the destination's figure.
    this.bulkOffset = r.bulkBytes;
    this.pendAllUnsent();
    return mustDrop;
  }
}

/**
 * The pure part of recovery. Held = received, minus pages whose newest copy
 * was sent at or past the destination's bulk count (lost: it may hold an older
 * one), minus pages dirtied since sent (not in `sent`).
 *
 * Once the destination took the switchover (`resumed`) a received page is
 * held whatever its offset: every copy sent before the switchover came ahead
 * of it on the one ordered stream, stale ones were dropped by it, and every
 * copy after it is of the paused guest's final bytes. That is what lets the
 * real back end spread post-copy pages over several bulk connections, whose
 * bytes the destination takes out of the engine's order (docs/real.md).
 */
export function reconcileHeld(
  sent: Bitmap,
  sentAt: BulkOffsets,
  r: RecoverInput,
): { held: Bitmap; lost: number[]; mustDrop: number[] } {
  const held = new Bitmap(sent.size);
  const lost: number[] = [];
  const mustDrop: number[] = [];
  for (let p = 0; p < sent.size; p++) {
    const at = sentAt.of(p);
    const isLost = at !== NOT_ON_BULK && at >= r.bulkBytes && !(r.resumed && r.received.has(p));
    if (isLost) lost.push(p);
    if (r.received.has(p) && !isLost && sent.has(p)) held.set(p);
    else if (r.received.has(p) && !r.resumed) mustDrop.push(p);
  }
  return { held, lost, mustDrop };
}
