/**
 * The source engine's window on guest RAM (SourceGuestPort).
 *
 * readPage uses pread on the memfd, not the agent's mapping: a load through
 * a mapping of a memfd hole allocates the page, and a guest's never-touched
 * pages are holes (zero pages we must not inflate). Runs of consecutive
 * pages (the background push) are read 16 pages per pread; a page that
 * breaks the run (a demand request) is read alone, so a fault's reply never
 * waits for a chunk it does not need. The chunk is dropped whenever the dirty
 * log is collected: a page read before that point may have changed since.
 *
 * collectDirty uses the guest's async write-protect log (PAGEMAP_SCAN with
 * PM_SCAN_WP_MATCHING on /proc/PID/pagemap: written pages, re-protected in
 * the same walk). Post-copy never needs it: the guest is registered without
 * WP (--no-wp) and the port returns nothing, which also keeps a scan out of
 * the downtime.
 *
 * With the native data plane (`deferred`, docs/real.md "Data plane") the
 * port reads no bytes: a page that holds data is DEFERRED (the bulk sender
 * thread reads it from the memfd as it writes the frame), a hole is a zero
 * page. Which pages hold data comes from lseek(SEEK_DATA/SEEK_HOLE), 256
 * pages at a time along a run, dropped with the dirty log like the chunk.
 * The guest writes every page it touches non-zero (native/guest), so a hole
 * and a zero page are the same thing here.
 */
import type { SourceGuestPort } from "../engine/events.js";
import type { GuestProcess } from "./guest-process.js";
import { DEFERRED } from "./dataplane.js";
import { closeFd, memfdDataPages, pread, scanWrittenAndProtect } from "./native.js";

const CHUNK_PAGES = 16;
const MAP_PAGES = 256;

export class SourceMemoryPort implements SourceGuestPort<Uint8Array> {
  private readonly pageSize: number;
  private readonly pageCount: number;
  private readonly zero: Buffer;
  private chunk: Buffer | null = null;
  private chunkStart = 0;
  private lastPage = -2;
  private pagemapFd = -1;
  private map: Uint8Array | null = null;
  private mapStart = 0;

  constructor(
    private readonly guest: GuestProcess,
    /** Whether the guest tracks writes (pre-copy and hybrid). */
    private readonly tracking: boolean,
    /** Native data plane: pages are DEFERRED or null, never read here. */
    readonly deferred = false,
  ) {
    this.pageSize = guest.layout.pageSize;
    this.pageCount = guest.layout.memBytes / guest.layout.pageSize;
    this.zero = Buffer.alloc(this.pageSize);
    if (tracking) this.pagemapFd = guest.openPagemap();
  }

  readPage(page: number): Uint8Array | null {
    if (this.deferred) return this.holdsData(page) ? DEFERRED : null;
    return this.readBytes(page);
  }

  /** The page's bytes now (a DEFERRED page sent on the urgent lane, which Node writes); null for zeros. */
  readBytes(page: number): Uint8Array | null {
    const ps = this.pageSize;
    let data: Buffer;
    const c = this.chunk;
    if (c !== null && page >= this.chunkStart && (page - this.chunkStart) * ps < c.length) {
      const o = (page - this.chunkStart) * ps;
      data = c.subarray(o, o + ps);
    } else if (page === this.lastPage + 1) {
      const n = Math.min(CHUNK_PAGES, this.pageCount - page);
      this.chunk = pread(this.guest.memfd, page * ps, n * ps);
      this.chunkStart = page;
      data = this.chunk.subarray(0, ps);
    } else {
      data = pread(this.guest.memfd, page * ps, ps);
    }
    this.lastPage = page;
    return data.equals(this.zero) ? null : data;
  }

  private holdsData(page: number): boolean {
    const m = this.map;
    const along = page === this.lastPage + 1;
    this.lastPage = page;
    if (m !== null && page >= this.mapStart && page - this.mapStart < m.length) return m[page - this.mapStart] === 1;
    // Along a run, a window ahead; a page off the run (a demand reply) alone.
    const n = along ? Math.min(MAP_PAGES, this.pageCount - page) : 1;
    const fresh = memfdDataPages(this.guest.memfd, page, n, this.pageSize);
    if (n > 1) {
      this.map = fresh;
      this.mapStart = page;
    }
    return fresh[0] === 1;
  }

  collectDirty(): Uint32Array {
    this.chunk = null;
    this.map = null;
    if (!this.tracking) return new Uint32Array(0);
    const { base, memBytes } = this.guest.layout;
    const regions = scanWrittenAndProtect(this.pagemapFd, base, base + BigInt(memBytes));
    const ps = BigInt(this.pageSize);
    const pages: number[] = [];
    for (const r of regions) {
      const first = Number((r.start - base) / ps);
      const end = Math.min(this.pageCount, Number((r.end - base + ps - 1n) / ps));
      for (let p = first; p < end; p++) pages.push(p);
    }
    return Uint32Array.from(pages);
  }

  close(): void {
    if (this.pagemapFd >= 0) closeFd(this.pagemapFd);
    this.pagemapFd = -1;
  }
}
