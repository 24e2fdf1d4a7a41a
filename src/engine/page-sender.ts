/**
 * Turns "the next page(s) to send" into page messages: demand replies (one
 * page each, skipping pages whose current copy is already on its way) and
 * background batches (up to `batchPages`, within the bandwidth cap). Reads
 * each page from the guest at the moment it is chosen and books it in the
 * ledger and the counters. It decides nothing about stages: the source tells
 * it what order to take pages in and whether the cap applies.
 */
import { HEADER_BYTES, PAGE_ENTRY_OVERHEAD } from "./codec.js";
import type { SourceGuestPort } from "./events.js";
import type { PageLedger } from "./ledger.js";
import type { Channel, Message, PagesMsg } from "./messages.js";
import type { SourceMetrics } from "./metrics.js";
import type { Pacer } from "./pacer.js";

export type Batch<P> =
  /** Valid until the next call of `batch` (one object is reused: a batch is made per background message). */
  | { kind: "pages"; msg: Message<P>; pages: number; bytes: number }
  /** The cap holds the batch back until this time. */
  | { kind: "paced"; until: number }
  | { kind: "none" };

const NONE: Batch<never> = { kind: "none" };
/** At most this many spare messages of each size are kept. */
const MAX_SPARE = 64;

/**
 * Where a background batch's pages come from, a run at a time (as
 * BackgroundOrder.nextRun): the first page of the next run of consecutive
 * pages, at most `max` long (-1: none left), its length in `runLength`.
 */
export interface PageRuns {
  nextRun(max: number): number;
  readonly runLength: number;
}

export class PageSender<P> {
  private readonly worstBatchBytes: number;
  private readonly requests: number[] = [];
  private readonly made: Extract<Batch<P>, { kind: "pages" }> = { kind: "pages", msg: { type: "pages", pages: new Uint32Array(0), data: [] }, pages: 0, bytes: 0 };
  /**
   * Pages messages a driver handed back once nothing holds them any more
   * (`recycle`: the simulator, after the destination took them in), reused
   * for the next batch (batchPages long) or demand reply (one page). A driver
   * that never hands any back (the real back end) gets new ones every time.
   */
  private readonly spareBatches: PagesMsg<P>[] = [];
  private readonly spareReplies: PagesMsg<P>[] = [];

  constructor(
    private readonly pageSize: number,
    private readonly batchPages: number,
    private readonly guest: SourceGuestPort<P>,
    private readonly ledger: PageLedger,
    private readonly metrics: SourceMetrics,
    private readonly pacer: Pacer,
  ) {
    this.worstBatchBytes = 4 + batchPages * (PAGE_ENTRY_OVERHEAD + pageSize);
  }

  /** A vCPU waits for this page at the destination. */
  request(page: number): void {
    this.requests.push(page);
  }

  /** Requests die with the link (the destination repeats them after recovery). */
  dropRequests(): void {
    this.requests.length = 0;
  }

  /** The reply to the oldest request whose page has not gone out yet, or null. */
  demandReply(channel: Channel): Message<P> | null {
    while (this.requests.length > 0) {
      const page = this.requests.shift() as number;
      if (this.ledger.sent.has(page)) {
        // Already on its way (or there): that copy answers the request.
        this.metrics.requestsAlreadySent++;
        continue;
      }
      this.metrics.requestsServed++;
      const spare = this.spareReplies.pop();
      if (spare === undefined) {
        // Not Uint32Array.of: its iterator path costs about twice a plain one-slot array (one per demand fault).
        const pages = new Uint32Array(1);
        pages[0] = page;
        return { type: "pages", pages, data: [this.take(page, channel)] };
      }
      spare.pages[0] = page;
      spare.data[0] = this.take(page, channel);
      return spare;
    }
    return null;
  }

  /**
   * A pages message this sender made is free again: nothing (link, engine,
   * guest) holds it or its arrays any more. Only a driver that owns a message
   * to its end may say so; the next batch or reply may overwrite it.
   */
  recycle(msg: PagesMsg<P>): void {
    const n = msg.pages.length;
    if (msg.data.length !== n || msg.preinstalled !== undefined || msg.installedAt !== undefined || msg.wireBytes !== undefined) return;
    // Bounded: about a lane window's worth of messages is in flight at once.
    if (n === this.batchPages && this.spareBatches.length < MAX_SPARE) this.spareBatches.push(msg);
    else if (n === 1 && this.spareReplies.length < MAX_SPARE) this.spareReplies.push(msg);
  }

  /**
   * Up to batchPages pages from `runs` for the bulk lane. Each run is read and
   * booked as a whole (one ledger booking, word by word): the same pages,
   * reads and books as taking them one at a time in the same order.
   */
  batch(runs: PageRuns, now: number, paced: boolean): Batch<P> {
    if (this.ledger.pending.count === 0) return NONE;
    if (paced) {
      const wait = this.pacer.delay(this.worstBatchBytes, now);
      if (wait > 0) return { kind: "paced", until: now + wait };
    }
    // Filled in place: a full batch (the usual one) is the message's own arrays, a spare message's when there is one.
    const spare = this.spareBatches.pop();
    let out = spare !== undefined ? spare.pages : new Uint32Array(this.batchPages);
    let data: (P | null)[] = spare !== undefined ? spare.data : [];
    const guest = this.guest;
    let n = 0;
    let zero = 0;
    let resent = 0;
    while (n < this.batchPages) {
      const first = runs.nextRun(this.batchPages - n);
      if (first < 0) break;
      const count = runs.runLength;
      // Read before booked, as `take` does (the ledger does not look at the contents).
      for (let k = 0; k < count; k++) {
        const d = guest.readPage(first + k);
        if (d === null) zero++;
        out[n] = first + k;
        data[n++] = d;
      }
      resent += this.ledger.markSentRun(first, count);
    }
    if (n < this.batchPages && spare !== undefined) {
      // A short batch (the stream's last): arrays of its own length, the spare kept for the next full one.
      out = out.slice(0, n);
      data = data.slice(0, n);
      this.spareBatches.push(spare);
    }
    if (n === 0) return NONE;
    const m = this.metrics;
    m.pagesSent += n;
    m.pagesZero += zero;
    m.pagesResent += resent;
    // As encodedSize counts a pages message.
    const bytes = HEADER_BYTES + 4 + n * PAGE_ENTRY_OVERHEAD + (n - zero) * this.pageSize;
    if (paced) this.pacer.spend(bytes, now);
    const made = this.made;
    if (n < out.length) out = out.slice(0, n);
    made.msg = spare !== undefined && out === spare.pages ? spare : { type: "pages", pages: out, data };
    made.pages = n;
    made.bytes = bytes;
    return made;
  }

  /** Reads a page for sending and books it; it goes out next, on `channel`. */
  private take(page: number, channel: Channel): P | null {
    const data = this.guest.readPage(page);
    const m = this.metrics;
    m.pagesSent++;
    if (data === null) m.pagesZero++;
    if (this.ledger.markSent(page, channel)) m.pagesResent++;
    return data;
  }
}
