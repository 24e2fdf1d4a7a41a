/**
 * The destination engine's hands on guest RAM: install, wake, drop, and the
 * fault reader that turns the guest's missing-page faults into page indexes.
 *
 * Installing (see DESIGN.md, "one trap to respect"): before the guest runs a
 * plain pwrite into the memfd is fine and cheapest; once it may run (from the
 * moment we ask it to resume) a page must appear whole or not at all, so it
 * goes in with UFFDIO_COPY (UFFDIO_ZEROPAGE for a zero page). EEXIST means the
 * page got there meanwhile — expected; the waiters are woken and we go on.
 *
 * Install mode "continue" (dataplane.ts, native/src/page_states.h): every
 * install, wake and drop goes through the native page table that the bulk
 * receiver threads share — the bytes are written into the memfd and mapped
 * with UFFDIO_CONTINUE, and once the guest may run a page is only written by
 * the path that claimed it (a demand reply that finds the bulk copy being
 * received, or mapped, drops its bytes; the waiters are woken by that copy's map).
 *
 * Install mode "copy" on base pages (the default): the native bulk receivers
 * leave zero pages holes (native/src/zero_holes.h) — no page allocated, no
 * install — and the fault reader answers a fault on one itself with a zero
 * page. When the session ends after completion the guest's memory is
 * unregistered from the uffd (stopFaults): a hole left then is memory like
 * any other, zero when first touched.
 */
import type { GuestProcess } from "./guest-process.js";
import { raiseLaneThread } from "./lane-priority.js";
import { constants, createPageTable, createZeroHoleTable, errnoCode, pwrite, punchHole, punchPages, startFaultReader, TableInstall, uffdCopy, uffdUnregister, uffdWake, uffdZeropage, type FaultLaneHandle, type FaultReaderHandle, type Mapping, type PageTableHandle, type ZeroHoleTableHandle } from "./native.js";
import type { PageBatch } from "../engine/messages.js";
import type { InstallMode } from "./dataplane.js";

export class DestinationMemory {
  readonly pageSize: number;
  readonly pageCount: number;
  private readonly base: bigint;
  private readonly zero: Buffer;
  private running_ = false;
  private reader: FaultReaderHandle | null = null;
  /** The fault lane the reader hands missing faults to while it is armed (fault-lane.ts). */
  private lane: FaultLaneHandle | null = null;
  /** Installs that found the page already there (EEXIST), or claimed by another path (mode "continue"). */
  raced = 0;
  /** Install mode "continue": the claims, shared with the native bulk receivers (null: mode "copy"). */
  readonly table: PageTableHandle | null = null;
  /** Mode "copy" on base pages: the zero pages the native bulk receivers left holes (null otherwise). */
  readonly holes: ZeroHoleTableHandle | null = null;
  /** The engine's completion came: every page is here. */
  private completed = false;

  constructor(
    private readonly guest: GuestProcess,
    install: InstallMode = "copy",
    /** Whether the native receivers may leave zero pages holes (PPSIM_ZERO_HOLES=0 turns it off, for A/B). */
    zeroHoles = zeroHolesWanted(),
    /** Install mode "continue" only: the memfd was populated ahead, and this its mapping, every page mapped (dest-prealloc.ts); the page table takes it over. */
    alias: Mapping | null = null,
  ) {
    if (guest.uffd < 0) throw new Error("the destination guest has no userfaultfd");
    this.pageSize = guest.layout.pageSize;
    this.pageCount = guest.layout.memBytes / this.pageSize;
    this.base = guest.layout.base;
    this.zero = Buffer.alloc(this.pageSize);
    if (alias !== null && install !== "continue") throw new Error("memory populated ahead installs in mode continue only");
    if (install === "continue") {
      const C = constants();
      // Without MINOR a page written into the page cache would be visible to the guest half-written.
      if (guest.layout.hugetlb || (guest.layout.registerMode & C.UFFDIO_REGISTER_MODE_MINOR) === 0) {
        throw new Error("install mode continue needs a guest on base pages registered MISSING|MINOR (ppsim-guest --minor)");
      }
      this.table = createPageTable(guest.memfd, guest.uffd, this.base, this.pageSize, this.pageCount, alias);
    } else if (!guest.layout.hugetlb && zeroHoles) {
      this.holes = createZeroHoleTable(this.pageCount);
    }
  }

  get mode(): InstallMode {
    return this.table === null ? "copy" : "continue";
  }

  /** Frees the page table's fds (mode "continue"); nothing installs afterwards. */
  close(): void {
    this.table?.close();
  }

  /** Whether the guest may run (installs are atomic). */
  get running(): boolean {
    return this.running_;
  }

  /** From now on the guest may run: installs must be atomic. */
  guestMayRun(): void {
    this.running_ = true;
  }

  install(page: number, data: Uint8Array | null): void {
    if (this.table !== null) {
      if (this.table.install(page, data, this.running_) !== TableInstall.Installed) this.raced++;
      return;
    }
    if (this.guest.layout.hugetlb) return this.installHuge(page, data);
    const ps = this.pageSize;
    const addr = this.base + BigInt(page * ps);
    const uffd = this.guest.uffd;
    if (!this.running_) {
      if (data !== null) {
        pwrite(this.guest.memfd, page * ps, data);
        // The native receivers punch a zero page resent over data only where the table says there is data.
        this.holes?.wrote(page);
        return;
      }
      try {
        uffdZeropage(uffd, addr, ps);
      } catch (e) {
        // A page resent as zero over an older non-zero copy.
        if (errnoCode(e) !== "EEXIST") throw e;
        pwrite(this.guest.memfd, page * ps, this.zero);
      }
      return;
    }
    try {
      if (data === null) uffdZeropage(uffd, addr, ps);
      else uffdCopy(uffd, addr, data);
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw e;
      this.raced++;
      uffdWake(uffd, addr, ps);
    }
  }

  /**
   * Installs pages in order. Once the guest may run, each run of consecutive
   * pages goes in with one UFFDIO_COPY, zero pages of the run included as
   * zeros (a 16-page copy costs about half as much per page as 16 single
   * ones, docs/native.md; zero pages are scattered through most workloads, so
   * runs of one kind alone would be short; a shmem zero page takes a page of
   * memory either way). A run that meets a page already there (EEXIST
   * part-way) is redone page by page, where EEXIST is the expected race.
   */
  installMany(batch: PageBatch<Uint8Array>): void {
    const { pages, data } = batch;
    if (this.guest.layout.hugetlb || this.table !== null) {
      for (let k = 0; k < pages.length; k++) this.install(pages[k], data[k]);
      return;
    }
    let i = 0;
    while (i < pages.length) {
      let j = i + 1;
      while (j < pages.length && pages[j] === pages[j - 1] + 1) j++;
      if (j - i === 1 || !this.running || !this.installRun(batch, i, j)) {
        for (let k = i; k < j; k++) this.install(pages[k], data[k]);
      }
      i = j;
    }
  }

  /** One ioctl for the batch's pages [i..j); false if it must be redone page by page. */
  private installRun(batch: PageBatch<Uint8Array>, i: number, j: number): boolean {
    const ps = this.pageSize;
    const addr = this.base + BigInt(batch.pages[i] * ps);
    try {
      let allZero = true;
      for (let k = i; k < j && allZero; k++) allZero = batch.data[k] === null;
      if (allZero) {
        uffdZeropage(this.guest.uffd, addr, (j - i) * ps);
      } else {
        const buf = Buffer.alloc((j - i) * ps);
        for (let k = i; k < j; k++) {
          const d = batch.data[k];
          if (d !== null) buf.set(d, (k - i) * ps);
        }
        uffdCopy(this.guest.uffd, addr, buf);
      }
      return true;
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw e;
      return false;
    }
  }

  /**
   * hugetlbfs has neither write(2) nor UFFDIO_ZEROPAGE: every huge page goes
   * in with UFFDIO_COPY (zeros for a zero page). One resent before the guest
   * runs replaces the older copy: punched out, then copied again.
   */
  private installHuge(page: number, data: Uint8Array | null): void {
    const ps = this.pageSize;
    const addr = this.base + BigInt(page * ps);
    const uffd = this.guest.uffd;
    const bytes = data ?? this.zero;
    try {
      uffdCopy(uffd, addr, bytes);
    } catch (e) {
      if (errnoCode(e) !== "EEXIST") throw e;
      if (!this.running) {
        punchHole(this.guest.memfd, page * ps, ps);
        uffdCopy(uffd, addr, bytes);
        return;
      }
      this.raced++;
      uffdWake(uffd, addr, ps);
    }
  }

  wake(page: number): void {
    if (this.table !== null) {
      this.table.wake(page);
      return;
    }
    uffdWake(this.guest.uffd, this.base + BigInt(page * this.pageSize), this.pageSize);
  }

  /**
   * Punches the pages out of the memfd (runs of consecutive pages at once, in one native call: a
   * hybrid's stale pages are inside the downtime, 2×10^5 of them at 4 GiB): the guest faults on them again.
   */
  drop(pages: Uint32Array): void {
    const sorted = Uint32Array.from(pages).sort();
    let w = 0; // repeats out: the engine's stale list has none, but punchPages refuses them
    for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[w++] = sorted[i];
    const unique = sorted.subarray(0, w);
    punchPages(this.guest.memfd, unique, this.pageSize);
    // Holes again: the next copy of each is claimed anew, and none of them may be answered as zeros.
    this.table?.markAbsent(unique);
    this.holes?.clear(unique);
  }

  /**
   * Starts the fault reader; `fault(page, tid, readUs)` for each missing-page fault inside guest RAM (readUs: when
   * the reader thread read it, CLOCK_MONOTONIC µs). PPSIM_LANE_RR: its thread in SCHED_RR (lane-priority.ts; `log`
   * hears a refusal).
   */
  startFaults(fault: (page: number, tid: number, readUs: number) => void, failed: (err: Error) => void, log?: (line: string) => void): void {
    const pf = constants().UFFD_EVENT_PAGEFAULT;
    const ps = BigInt(this.pageSize);
    const end = this.base + BigInt(this.guest.layout.memBytes);
    this.reader = startFaultReader(
      this.guest.uffd,
      (events) => {
        for (const e of events) {
          if (e.event !== pf || e.address < this.base || e.address >= end) continue;
          fault(Number((e.address - this.base) / ps), e.tid, e.readUs);
        }
      },
      failed,
    );
    raiseLaneThread("fault reader", this.reader.tid(), log);
    if (this.holes !== null) this.reader.setHoles(this.holes, this.base, this.pageSize);
    if (this.lane !== null) this.reader.setLane(this.lane);
  }

  /** Missing faults the reader answered as zero holes so far (0 without holes or reader). */
  get zeroFaults(): number {
    return this.reader?.zeroFaults() ?? 0;
  }

  /**
   * Every page is here: nothing is fetched any more. The reader keeps
   * answering faults on zero holes until the session ends (stopFaults): a
   * demand reply still on the lane then meets an installed page (EEXIST,
   * harmless), where an unregistered range would fail its install.
   */
  complete(): void {
    this.completed = true;
    // Without holes nothing can fault any more: the reader goes now, as it always did.
    if (this.holes === null) this.stopFaults();
  }

  /** From the reader's next read on, missing faults go to this lane (null: back to `fault`). */
  setLane(lane: FaultLaneHandle | null): void {
    this.lane = lane;
    this.reader?.setLane(lane);
  }

  /**
   * Stops the fault reader. After completion with zero holes the guest's
   * memory first leaves the uffd (UFFDIO_UNREGISTER acts on the guest's mm
   * through the uffd, and wakes any fault still waiting, which then takes a
   * zero page the usual way): a guest still running never waits on a hole
   * nobody answers. A failed unregister means the guest is gone: nothing can
   * fault then.
   */
  stopFaults(): void {
    // Once only: the reader is null after the first stop.
    if (this.completed && this.holes !== null && this.reader !== null) {
      try {
        uffdUnregister(this.guest.uffd, this.base, this.guest.layout.memBytes);
      } catch {
        // the guest's mm is gone (it exited): no fault can come
      }
    }
    this.reader?.stop();
    this.reader = null;
  }
}

/** PPSIM_ZERO_HOLES=0 keeps zero pages installed (the way before, for A/B); unset or 1: holes. */
export function zeroHolesWanted(): boolean {
  const v = process.env.PPSIM_ZERO_HOLES;
  if (v === undefined || v === "" || v === "1") return true;
  if (v === "0") return false;
  throw new Error(`PPSIM_ZERO_HOLES must be 0 or 1, not ${JSON.stringify(v)}`);
}
