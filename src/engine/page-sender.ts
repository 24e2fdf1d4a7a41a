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
import type { Channel, Message } from "./messages.js";
import type { SourceMetrics } from "./metrics.js";
import type { Pacer } from "./pacer.js";

export type Batch<P> =
  /** Valid until the next call of `batch` (one object is reused: a batch is made per background message). */
  | { kind: "pages"; msg: Message<P>; pages: number; bytes: number }
  /** The cap holds the batch back until this time. */
  | { kind: "paced"; until: number }
  | { kind: "none" };

const NONE: Batch<never> = { kind: "none" };

export class PageSender<P> {
  private readonly worstBatchBytes: number;
  private readonly requests: number[] = [];
  /** A batch's page numbers as they are chosen; each message gets an exact-length copy. */
  private readonly scratch: Uint32Array;
  private readonly made: Extract<Batch<P>, { kind: "pages" }> = { kind: "pages", msg: { type: "pages", pages: new Uint32Array(0), data: [] }, pages: 0, bytes: 0 };

  constructor(
    private readonly pageSize: number,
    private readonly batchPages: number,
    private readonly guest: SourceGuestPort<P>,
    private readonly ledger: PageLedger,
    private readonly metrics: SourceMetrics,
    private readonly pacer: Pacer,
  ) {
    this.worstBatchBytes = 4 + batchPages * (PAGE_ENTRY_OVERHEAD + pageSize);
    this.scratch = new Uint32Array(batchPages);
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
      return { type: "pages", pages: Uint32Array.of(page), data: [this.take(page, channel)] };
    }
    return null;
  }

  /** Up to batchPages pages from `next` (-1: none left) for the bulk lane. */
  batch(next: () => number, now: number, paced: boolean): Batch<P> {
    if (this.ledger.pending.count === 0) return NONE;
    if (paced) {
      const wait = this.pacer.delay(this.worstBatchBytes, now);
      if (wait > 0) return { kind: "paced", until: now + wait };
    }
    const scratch = this.scratch;
    const data: (P | null)[] = [];
    // Counted as encodedSize counts a pages message, page by page as they are taken.
    let bytes = HEADER_BYTES + 4;
    let n = 0;
    while (n < this.batchPages) {
      const p = next();
      if (p < 0) break;
      const d = this.take(p, "bulk");
      scratch[n++] = p;
      data.push(d);
      bytes += PAGE_ENTRY_OVERHEAD + (d === null ? 0 : this.pageSize);
    }
    if (n === 0) return NONE;
    if (paced) this.pacer.spend(bytes, now);
    const made = this.made;
    made.msg = { type: "pages", pages: scratch.slice(0, n), data };
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
