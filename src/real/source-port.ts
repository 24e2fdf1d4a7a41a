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
 */
import type { SourceGuestPort } from "../engine/events.js";
import type { GuestProcess } from "./guest-process.js";
import { closeFd, pread, scanWrittenAndProtect } from "./native.js";

const CHUNK_PAGES = 16;

export class SourceMemoryPort implements SourceGuestPort<Uint8Array> {
  private readonly pageSize: number;
  private readonly pageCount: number;
  private readonly zero: Buffer;
  private chunk: Buffer | null = null;
  private chunkStart = 0;
  private lastPage = -2;
  private pagemapFd = -1;

  constructor(
    private readonly guest: GuestProcess,
    /** Whether the guest tracks writes (pre-copy and hybrid). */
    private readonly tracking: boolean,
  ) {
    this.pageSize = guest.layout.pageSize;
    this.pageCount = guest.layout.memBytes / guest.layout.pageSize;
    this.zero = Buffer.alloc(this.pageSize);
    if (tracking) this.pagemapFd = guest.openPagemap();
  }

  readPage(page: number): Uint8Array | null {
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

  collectDirty(): Uint32Array {
    this.chunk = null;
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
