/**
 * What the destination holds and who waits for it: the pages present in guest
 * memory with how each came (pre-copy, background, demand), and the pages
 * vCPUs fault on until they arrive, with the figures that come from them
 * (fault latency, blocktime, per-vCPU waits).
 *
 * `Destination` (destination.ts) decides what a message means and what to
 * tell the source; this file keeps the per-page books exact. It checks
 * nothing a peer sent: page numbers reach it already bounded by the layout.
 */
import { Bitmap, runEndIn } from "./bitmap.js";
import type { PageBatch } from "./messages.js";
import { EMPTY, PageWaits } from "./dest-waits.js";
import type { DestinationMetrics } from "./metrics.js";
import { addVcpuWait } from "./vcpu-waits.js";

const Origin = { None: 0, Precopy: 1, Background: 2, Demand: 3 } as const;
const ORIGIN_KEYS = [null, "precopy", "background", "demand"] as const;

/** What a fault on a page calls for. */
export type FaultOutcome = "present" | "joined" | "request";

export class DestinationPages {
  readonly present: Bitmap;
  /** How each present page came (Origin), to keep the per-origin counts right when one is dropped. */
  private readonly origin: Uint8Array;
  /** Pages requested and not yet installed, with the fault time of each waiting vCPU (dest-waits.ts: nothing allocated per fault). */
  private readonly waiting = new PageWaits();
  private readonly vcpuIndex = new Map<number, number>();
  /** The keys of `waiting`, one bit each: most pages received have no waiter, and a bit is cheaper to test than a map. */
  private readonly waitingPages: Bitmap;

  constructor(
    readonly pageCount: number,
    private readonly metrics: DestinationMetrics,
  ) {
    this.present = new Bitmap(pageCount);
    this.origin = new Uint8Array(pageCount);
    this.waitingPages = new Bitmap(pageCount);
  }

  get whole(): boolean {
    return this.present.count === this.pageCount;
  }

  /** The pages vCPUs wait on, each requested once, in the order they were first faulted on. */
  waitedFor(): number[] {
    return this.waiting.pages();
  }

  /**
   * Books a batch in (every page number below the page count) and returns what
   * to install: the batch itself, the part of it not yet present, or null when
   * nothing is new. Once the guest may run (`running`) a page already present
   * is a duplicate whose copy here is current; before, a page sent again is a
   * newer copy. `byRuns`: see the loop (false only in tests).
   */
  intake<P>(batch: PageBatch<P>, running: boolean, now: number, byRuns = true): PageBatch<P> | null {
    const pages = batch.pages;
    const n = pages.length;
    // Indices of the pages to install, made only once one is skipped: usually the whole batch is installed as it came.
    let kept: number[] | null = null;
    const present = this.present;
    const waitingPages = this.waitingPages;
    const origins = this.origin;
    // Per-origin counts change in bulk after the loop (the loop runs once per page received).
    let demand = 0;
    let background = 0;
    let precopy = 0;
    let i = 0;
    while (i < n) {
      // The run of consecutive pages from i. When none of it is present or
      // waited for (a background message, mostly), each page of it is new and
      // of one origin — a page not present has none — so it is booked word by
      // word (a lone page goes the page's way: nothing to gain); `byRuns`
      // false books every page one by one (the reference the run-wise books
      // are tested against).
      const first = pages[i];
      const j = runEndIn(pages, i);
      const end = first + (j - i);
      if (byRuns && j - i > 1 && !present.anyInRange(first, end) && !waitingPages.anyInRange(first, end)) {
        present.setRange(first, end);
        const kind = running ? Origin.Background : Origin.Precopy;
        for (let p = first; p < end; p++) origins[p] = kind;
        if (running) background += j - i;
        else precopy += j - i;
        if (kept !== null) for (let k = i; k < j; k++) kept.push(k);
        i = j;
        continue;
      }
      for (; i < j; i++) {
        const page = pages[i];
        const waiter = waitingPages.has(page) ? this.waiting.find(page) : EMPTY;
        if (running && present.has(page)) {
          if (kept === null) kept = Array.from({ length: i }, (_, k) => k);
          continue;
        }
        if (kept !== null) kept.push(i);
        // A page has an origin exactly while present: the bit (likely in cache) spares a demanded page's origin byte a miss.
        const before = present.has(page) ? origins[page] : Origin.None;
        if (before === Origin.Demand) demand--;
        else if (before === Origin.Background) background--;
        else if (before === Origin.Precopy) precopy--;
        present.set(page);
        if (waiter !== EMPTY) {
          origins[page] = Origin.Demand;
          demand++;
          waitingPages.clear(page);
          // The driver may say when the page was installed (the fault lane's native install, before this turn).
          const at = batch.installedAt ?? now;
          const waits = this.waiting;
          this.metrics.faultLatenciesUs.push(Math.max(0, at - waits.firstFaultAt(waiter)));
          for (let r = waits.firstWaiter(waiter); r !== EMPTY; r = waits.nextWaiter(r)) {
            const us = Math.max(0, at - waits.waiterAt(r));
            this.metrics.blocktimeUs += us;
            addVcpuWait(this.metrics.vcpuWaits, this.vcpuIndex, waits.waiterVcpu(r), us);
          }
          waits.remove(waiter);
        } else if (running) {
          origins[page] = Origin.Background;
          background++;
        } else {
          origins[page] = Origin.Precopy;
          precopy++;
        }
      }
    }
    const counts = this.metrics.present;
    if (demand !== 0) counts.demand += demand;
    if (background !== 0) counts.background += background;
    if (precopy !== 0) counts.precopy += precopy;
    if (kept === null) return pages.length > 0 ? batch : null;
    if (kept.length === 0) return null;
    const data = batch.data;
    const install: PageBatch<P> = { pages: Uint32Array.from(kept, (k) => pages[k]), data: kept.map((k) => data[k]) };
    if (batch.preinstalled) install.preinstalled = true;
    return install;
  }

  /** A vCPU faulted on a page (below the page count): all vCPUs waiting on one page share one request. */
  fault(page: number, vcpu: number, now: number): FaultOutcome {
    if (this.present.has(page)) return "present";
    if (this.waitingPages.has(page)) {
      this.waiting.join(this.waiting.find(page), vcpu, now);
      return "joined";
    }
    this.waiting.add(page, vcpu, now);
    this.waitingPages.set(page);
    return "request";
  }

  /** A present page is gone (stale at switchover). */
  drop(page: number): void {
    const before = this.origin[page];
    if (before === Origin.None) return;
    this.metrics.present[ORIGIN_KEYS[before]!]--;
    this.origin[page] = Origin.None;
    this.present.clear(page);
  }
}
