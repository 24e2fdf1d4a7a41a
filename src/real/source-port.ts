/**
 * The source engine's window on guest RAM (SourceGuestPort).
 *
 * readPage uses pread on the memfd, not the agent's mapping: a load through
 * a mapping of a memfd hole allocates the page, and a guest's never-touched
 * pages are holes (zero pages we must not inflate). Runs of consecutive
 * pages (the background push) are read 16 pages per pread (at most 2 MiB:
 * a huge page alone, or one pread of 32 MiB held the loop every 16th pull); a page that
 * breaks the run (a demand request) is read alone, so a fault's reply never
 * waits for a chunk it does not need. The chunk is dropped whenever the dirty
 * log is collected: a page read before that point may have changed since.
 *
 * collectDirty uses the guest's async write-protect log (PAGEMAP_SCAN with
 * PM_SCAN_WP_MATCHING on /proc/PID/pagemap: written pages, re-protected in
 * the same walk), as a page list the addon makes, ascending and each page
 * once (a region per JS object cost 11–45 ms at 1 GiB at every round's end,
 * with the guest running on; docs/real-benchmarks.md "Pre-copy's downtime and
 * its limit"). Post-copy never needs it: the guest is registered without
 * WP (--no-wp) and the port returns nothing, which also keeps a scan out of
 * the downtime.
 *
 * With the native data plane (`deferred`, docs/real.md "Data plane") the
 * port reads no bytes: a page that holds data is DEFERRED (the bulk sender
 * thread reads it from the memfd as it writes the frame), a hole is a zero
 * page. Which pages hold data comes from lseek(SEEK_DATA/SEEK_HOLE) over the
 * whole memory, once, at the first page asked; from then on the dirty log
 * keeps it (a written page holds data). Not per window or page, as it was:
 * SEEK_HOLE walks the page cache up to the next hole, wherever that is — in
 * a guest that wrote all its memory, the end of it — so a lookup of one page
 * or of 256 cost as much as the whole map (2.4 ms at 256 MiB, 20 ms at
 * 1 GiB); asked per window and per scattered dirty page it was 89 % of the
 * source's CPU in memory-scan's pre-copy (docs/host-profile.md "memory-scan").
 * The guest writes every page it touches non-zero (native/guest), so a hole
 * and a zero page are the same thing here. Post-copy, untracked, learns the
 * map a window at a time instead, with lookups bounded by the window
 * (learnData), by mincore on the agent's mapping of the memfd where it can
 * (residentPages): shmem's lseek takes the inode lock, which the punching
 * thread's fallocate holds (source-release.ts), and the loop's SEEK_DATA
 * calls waited behind it — 135–170 ms of the source loop's self time in a
 * 1 GiB post-copy. A shmem page is in the page cache exactly when it holds
 * data unless it is on swap, so with any swap on, lseek it stays
 * (PPSIM_DATA_MAP=seek forces it: A/B).
 *
 * A guest on hugetlbfs has neither: its memfd is all data to lseek
 * (default_llseek) and mincore looks at the agent's own page tables, not the
 * page cache. Its map is the guest's own page tables instead — PAGEMAP_SCAN
 * of the guest process for present huge pages (one entry per 2 MiB: 512 at
 * 1 GiB, one ioctl), taken whole at the first lookup and again after the
 * pause, kept up by the dirty log in between. A page the guest touched is in
 * its page tables (a hugetlbfs page, once faulted in, stays mapped until
 * punched out), so a page absent there is a hole; one present that holds
 * zeros (read, never written) goes as data, which costs bytes, not
 * correctness.
 */
import type { SourceGuestPort } from "../engine/events.js";
import type { GuestProcess } from "./guest-process.js";
import { readFileSync } from "node:fs";
import { DEFERRED } from "./dataplane.js";
import { closeFd, constants, memfdDataPages, pagemapScan, pread, residentPages, scanWrittenPagesAndProtect } from "./native.js";

const CHUNK_PAGES = 16;
/** And no more bytes than this per pread (the engine's default batchBytes: one bulk message's worth). */
const CHUNK_BYTES = 2 * 1024 * 1024;
/** memfdDataPages' bound on one call's count; a larger memory is mapped in pieces. */
const MAP_CALL_PAGES = 1 << 24;
/** Untracked: pages learned at once along a run (learnData). */
const LEARN_PAGES = 256;

export type DataMapWay = "mincore" | "seek";

/**
 * How post-copy learns which pages hold data: PPSIM_DATA_MAP=seek|mincore (A/B), else mincore
 * unless a swap area is on (/proc/swaps lists one: a swapped-out page holds data but is not resident).
 */
export function dataMapWay(): DataMapWay {
  const v = process.env.PPSIM_DATA_MAP;
  if (v === "seek" || v === "mincore") return v;
  if (v !== undefined && v !== "") throw new Error(`PPSIM_DATA_MAP must be seek or mincore, not ${JSON.stringify(v)}`);
  return swapOn() ? "seek" : "mincore";
}

function swapOn(): boolean {
  try {
    return readFileSync("/proc/swaps", "utf8").trim().split("\n").length > 1;
  } catch {
    return true; // unknown: the lookup that is right either way
  }
}

export class SourceMemoryPort implements SourceGuestPort<Uint8Array> {
  private readonly pageSize: number;
  private readonly pageCount: number;
  private readonly zero: Buffer;
  private chunk: Buffer | null = null;
  private chunkStart = 0;
  private lastPage = -2;
  private pagemapFd = -1;
  /** Per page 1 if it holds data: the memfd at the first lookup, and every page the dirty log reported since. */
  private map: Uint8Array | null = null;
  /** Post-copy's lookups (learnData): mincore on the agent's mapping, or lseek on the memfd. */
  private readonly way: DataMapWay;
  /** hugetlbfs guest: the data map comes from the guest's page tables (presentMap). */
  private readonly huge: boolean;

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
    this.huge = guest.layout.hugetlb;
    if (tracking || (deferred && this.huge)) this.pagemapFd = guest.openPagemap();
    this.way = deferred && !tracking ? dataMapWay() : "seek";
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
      const n = Math.min(Math.max(1, Math.min(CHUNK_PAGES, Math.floor(CHUNK_BYTES / ps))), this.pageCount - page);
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
    if (this.huge) return (this.map ??= this.presentMap())[page] === 1;
    if (!this.tracking) return this.learnData(page);
    this.map ??= this.dataMap();
    return this.map[page] === 1;
  }

  /**
   * Untracked (post-copy: asked only after the pause, when nothing changes
   * any more), the map is learned as pages are asked, a window ahead along a
   * run and a page alone off it, with bounded lookups (one mincore per window,
   * or one SEEK_DATA per data page and no SEEK_HOLE): the one walk of the whole memory would come right
   * after the switchover and hold up the first demand replies behind it for
   * tens of milliseconds (1 GiB) to hundreds (4 GiB). Map values: 0 not yet
   * known, 1 data, 2 hole.
   */
  private learnData(page: number): boolean {
    const m = (this.map ??= new Uint8Array(this.pageCount));
    if (m[page] === 0) {
      const along = page === this.lastPage + 1;
      let n = 1;
      if (along) while (n < LEARN_PAGES && page + n < this.pageCount && m[page + n] === 0) n++;
      const ps = this.pageSize;
      const got = this.way === "mincore" ? residentPages(this.guest.memory.address + BigInt(page * ps), n, ps) : memfdDataPages(this.guest.memfd, page, n, ps, true);
      for (let i = 0; i < n; i++) m[page + i] = got[i] === 1 ? 1 : 2;
    }
    this.lastPage = page;
    return m[page] === 1;
  }

  /**
   * Why one walk holds for the whole migration: the engine collects the dirty
   * log (which starts tracking; untracked, the pause) before it reads a page, so a hole written
   * after the walk is in a later dirty log, which marks it (it is sent as a
   * zero page until then, and again after: the same as a stale copy). Data
   * never turns into a hole before switchover (nothing is punched); after it
   * a punched page is one the destination installed, which is not sent again.
   */
  private dataMap(): Uint8Array {
    const { memfd } = this.guest;
    if (this.pageCount <= MAP_CALL_PAGES) return memfdDataPages(memfd, 0, this.pageCount, this.pageSize);
    const m = new Uint8Array(this.pageCount);
    for (let p = 0; p < this.pageCount; p += MAP_CALL_PAGES) m.set(memfdDataPages(memfd, p, Math.min(MAP_CALL_PAGES, this.pageCount - p), this.pageSize), p);
    return m;
  }

  /** hugetlbfs: 1 for each huge page present in the guest's page tables (see the top). */
  private presentMap(): Uint8Array {
    const m = new Uint8Array(this.pageCount);
    const { base, memBytes } = this.guest.layout;
    const c = constants();
    const ps = BigInt(this.pageSize);
    const { regions } = pagemapScan(this.pagemapFd, base, base + BigInt(memBytes), { categoryMask: c.PAGE_IS_PRESENT, returnMask: c.PAGE_IS_PRESENT });
    for (const r of regions) m.fill(1, Number((r.start - base) / ps), Math.min(this.pageCount, Number((r.end - base + ps - 1n) / ps)));
    return m;
  }

  collectDirty(): Uint32Array {
    this.chunk = null;
    if (!this.tracking) {
      // Untracked (post-copy): collected once, at the pause; a map from before it would miss the guest's writes.
      this.map = null;
      return new Uint32Array(0);
    }
    const { base, memBytes } = this.guest.layout;
    const pages = scanWrittenPagesAndProtect(this.pagemapFd, base, base + BigInt(memBytes), this.pageSize);
    const m = this.map;
    if (m !== null) for (let i = 0; i < pages.length; i++) m[pages[i]] = 1;
    return pages;
  }

  close(): void {
    if (this.pagemapFd >= 0) closeFd(this.pagemapFd);
    this.pagemapFd = -1;
  }
}
