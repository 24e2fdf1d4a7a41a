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
 *
 * Nothing the switchover asks of it walks the guest's pages (issue 9: the
 * pause's handling is in the downtime). "Pending" becomes a view of "not
 * sent" (page-set.ts) instead of a bitmap made at the pause. The stale list
 * comes from the pages dirtied since the last moment nothing was stale
 * (`dirt`), not from a pass over every word: a page leaves "sent" only by
 * `dirtied`, so every stale page is in that list. Two invariants carry it:
 * sent ⊆ everSent (a page is sent only by markSent, which also sets
 * everSent; recovery only shrinks sent), so the stale count is
 * everSent.count − sent.count; and everSent only grows.
 */
import { Bitmap } from "./bitmap.js";
import type { Channel } from "./messages.js";
import { Complement, type PageSet } from "./page-set.js";

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
  /** Pages to send until `pendAllUnsent` (a bitmap of its own); from then on, every page not sent (a view). */
  private own: Bitmap | null;
  private pendingSet: PageSet;
  /**
   * Pages dirtied since the stale set was last empty (with repeats, and
   * pages sent again since), in the order `dirtied` saw them; or, once
   * longer than `dirtBound`, given up (null) until the stale set is empty
   * again: then a walk of the words costs less than the list.
   */
  private dirt: Uint32Array | null = new Uint32Array(1024);
  private dirtCount = 0;
  /** Where each `dirtied` call's entries start in `dirt`: a dirty log comes in page order, so each run is sorted (merged, not sorted again). */
  private readonly dirtRuns: number[] = [];
  private readonly dirtBound: number;
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
    this.own = new Bitmap(pageCount);
    this.pendingSet = this.own;
    this.sentIn = new Uint32Array(pageCount);
    // A word of the walk holds 32 pages, and a listed page costs about a word's time (a check, a sort's share).
    this.dirtBound = Math.max(1024, pageCount >>> 5);
  }

  /** Pages to send: this round's (pre-copy), or all the destination lacks (from `pendAllUnsent` on). */
  get pending(): PageSet {
    return this.pendingSet;
  }

  /** A copy of `page` goes out now, in the message that starts at the current bulk offset (or on urgent). Returns whether it was sent before. */
  markSent(page: number, channel: Channel): boolean {
    this.own?.clear(page);
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
    this.own?.clearRange(first, end);
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
    if (pages.length === 0) return;
    const sent = this.sent;
    const everSent = this.everSent;
    // Nothing stale before these: the list starts again (and may be taken up again if it was given up).
    if (everSent.count === sent.count) {
      this.dirtCount = 0;
      this.dirtRuns.length = 0;
      this.dirt ??= new Uint32Array(1024);
    }
    if (this.dirt !== null) this.dirtRuns.push(this.dirtCount);
    const own = this.own;
    for (const p of pages) {
      sent.clear(p);
      own?.set(p);
      // Only a page sent before can be stale; a never-sent one is pending without being listed.
      if (this.dirt !== null && everSent.has(p)) this.listDirt(p);
    }
  }

  private listDirt(p: number): void {
    let d = this.dirt as Uint32Array;
    if (this.dirtCount === d.length) {
      if (d.length >= this.dirtBound) {
        this.dirt = null;
        return;
      }
      const grown = new Uint32Array(Math.min(this.dirtBound, d.length * 2));
      grown.set(d);
      this.dirt = d = grown;
    }
    d[this.dirtCount++] = p;
  }

  /** Pages sent at least once whose current content the destination does not have, ascending. */
  stale(): Uint32Array {
    const n = this.everSent.count - this.sent.count;
    if (n === 0) return new Uint32Array(0);
    const d = this.dirt;
    if (d === null) return this.everSent.minus(this.sent);
    // Every stale page is listed (it left "sent" by `dirtied` since the stale set was empty): keep
    // those still out of date, each run sorted (a sort only for a run that came out of order), then merged.
    const sent = this.sent;
    const listed = new Uint32Array(this.dirtCount);
    const bounds: number[] = [];
    let k = 0;
    for (let r = 0; r < this.dirtRuns.length; r++) {
      const end = r + 1 < this.dirtRuns.length ? this.dirtRuns[r + 1] : this.dirtCount;
      const from = k;
      for (let i = this.dirtRuns[r]; i < end; i++) if (!sent.has(d[i])) listed[k++] = d[i];
      if (k === from) continue;
      const run = listed.subarray(from, k);
      if (!ascending(run)) run.sort();
      bounds.push(from);
    }
    bounds.push(k);
    const out = mergeRuns(listed, bounds);
    // Repeats out (a page dirtied again while stale).
    let m = 0;
    for (let i = 0; i < k; i++) if (m === 0 || out[i] !== out[m - 1]) out[m++] = out[i];
    // Cannot differ (the invariants above); if it ever did, the walk is the answer that needs none.
    if (m !== n) return this.everSent.minus(this.sent);
    return out.slice(0, m);
  }

  /** From now on, every page the destination lacks is pending (a view of "not sent": nothing is walked or made). */
  pendAllUnsent(): void {
    this.own = null;
    this.pendingSet = new Complement(this.sent);
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
    // Pages the recovery took out of "sent" left it without `dirtied`: the list no longer holds every stale page.
    this.dirt = null;
    // The lost bytes are forgotten: from here both sides count from the destination's figure.
    this.bulkOffset = r.bulkBytes;
    this.pendAllUnsent();
    return mustDrop;
  }
}

function ascending(a: Uint32Array): boolean {
  for (let i = 1; i < a.length; i++) if (a[i] < a[i - 1]) return false;
  return true;
}

/** Sorted runs a[bounds[i]] … a[bounds[i + 1] − 1] merged pairwise into one sorted run; the array that holds it. */
function mergeRuns(a: Uint32Array, bounds: number[]): Uint32Array {
  let src = a;
  let dst: Uint32Array | null = null;
  let b = bounds;
  while (b.length > 2) {
    dst ??= new Uint32Array(a.length);
    const next = [0];
    for (let j = 0; j + 1 < b.length; j += 2) {
      const lo = b[j];
      const mid = b[j + 1];
      const hi = j + 2 < b.length ? b[j + 2] : mid;
      let x = lo;
      let y = mid;
      let o = lo;
      while (x < mid && y < hi) dst[o++] = src[y] < src[x] ? src[y++] : src[x++];
      while (x < mid) dst[o++] = src[x++];
      while (y < hi) dst[o++] = src[y++];
      next.push(hi);
    }
    [src, dst] = [dst, src];
    b = next;
  }
  return src;
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
