/**
 * userfaultfd (create, API, register, COPY / ZEROPAGE / CONTINUE / WAKE /
 * WRITEPROTECT, the fault reader thread) and PAGEMAP_SCAN, the async-WP
 * dirty log (native/src/uffd.cc, fault_reader.cc, pagemap.cc).
 */
import { openSync } from "node:fs";
import type { Mapping, NativeConstants } from "./native.js";
import { loadAddon, type U64 } from "./native-load.js";
import type { FaultLaneHandle } from "./native-lane.js";
import type { ZeroHoleTableHandle } from "./native-dataplane.js";

/** One event read from a userfaultfd. `event` is UFFD_EVENT_* (0x12 = page fault). */
export interface FaultEvent {
  event: number;
  /** Faulting address (not page aligned unless the kernel rounds it; mask it). */
  address: bigint;
  /** UFFD_PAGEFAULT_FLAG_* (WRITE = 1, WP = 2, MINOR = 4). */
  flags: number;
  /** Faulting thread id, when the uffd was created with UFFD_FEATURE_THREAD_ID; else 0. */
  tid: number;
  /** When the reader thread read it: CLOCK_MONOTONIC µs (process.hrtime's clock). */
  readUs: number;
}

export interface FaultReaderHandle {
  /** Stops and joins the reader thread; batches already queued may still be delivered. Idempotent. */
  stop(): void;
  /** Let (or stop letting) the reader keep the process alive. */
  ref(): void;
  unref(): void;
  /** Fault lane (native-lane.ts): while it is armed, missing faults go to it (requested there, reported through its notices) instead of to onEvents. null: none. */
  setLane(lane: FaultLaneHandle | null): void;
  /** From the next read on, missing faults on the table's zero holes (guest RAM at `base`) are answered by the reader itself. null: none. */
  setHoles(table: ZeroHoleTableHandle | null, base?: bigint, pageSize?: number): void;
  /** Missing faults the reader answered as zero holes, since its start. */
  zeroFaults(): number;
  /** The reader thread's kernel id while it runs, else 0 (lane-priority.ts sets its class by it). */
  tid(): number;
}

export interface UffdApiResult {
  features: bigint;
  ioctls: bigint;
}

export interface PagemapScanOptions {
  /** PM_SCAN_* flags, e.g. PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC. */
  flags?: number;
  categoryMask?: number;
  categoryInverted?: number;
  categoryAnyofMask?: number;
  /** Categories to report (default PAGE_IS_WRITTEN). */
  returnMask?: number;
  /** Stop after this many pages (0 = no limit); the result's walkEnd says where. */
  maxPages?: number;
  /** Regions per ioctl call (default 1024); the scan continues from walk_end when full. */
  vecLen?: number;
}

export interface PageRegion {
  start: bigint;
  /** Exclusive. */
  end: bigint;
  categories: number;
}

export interface PagemapScanResult {
  regions: PageRegion[];
  walkEnd: bigint;
}

interface RawUffd {
  constants: NativeConstants;
  uffdCreate(opts?: { nonblock?: boolean; userModeOnly?: boolean }): number;
  uffdApi(uffd: number, features: U64): UffdApiResult;
  uffdRegister(uffd: number, start: U64, len: U64, mode: U64): bigint;
  uffdUnregister(uffd: number, start: U64, len: U64): void;
  uffdCopy(uffd: number, dst: U64, data: Uint8Array, mode?: U64): number;
  uffdCopyFromMapping(uffd: number, dst: U64, src: Mapping, offset: U64, len: U64, mode?: U64): number;
  uffdZeropage(uffd: number, start: U64, len: U64, mode?: U64): number;
  uffdContinue(uffd: number, start: U64, len: U64, mode?: U64): number;
  uffdWake(uffd: number, start: U64, len: U64): void;
  uffdWriteProtect(uffd: number, start: U64, len: U64, mode: U64): void;
  FaultReader: new (
    uffd: number,
    cb: (err: Error | null, events: FaultEvent[]) => void,
    maxBatch?: number,
  ) => FaultReaderHandle;
  pagemapScan(
    fd: number,
    start: U64,
    end: U64,
    opts?: PagemapScanOptions,
  ): { regions: BigUint64Array; walkEnd: bigint };
  pagemapScanPages(fd: number, start: U64, end: U64, pageSize: number, opts?: PagemapScanOptions): Uint32Array;
}

const addon = (): RawUffd => loadAddon<RawUffd>();

/**
 * A new userfaultfd (O_CLOEXEC|O_NONBLOCK by default), via /dev/userfaultfd
 * and else the syscall. Permission errors say how to grant access.
 */
export function uffdCreate(opts: { nonblock?: boolean; userModeOnly?: boolean } = {}): number {
  return addon().uffdCreate(opts);
}
export function uffdApi(uffd: number, features: number): UffdApiResult {
  return addon().uffdApi(uffd, features);
}
/** Returns the ioctls bitmask the kernel allows on the range. */
export function uffdRegister(uffd: number, start: bigint, len: number, mode: number): bigint {
  return addon().uffdRegister(uffd, start, len, mode);
}
export function uffdUnregister(uffd: number, start: bigint, len: number): void {
  addon().uffdUnregister(uffd, start, len);
}
/** UFFDIO_COPY from a buffer in this process; throws code EEXIST if already present. */
export function uffdCopy(uffd: number, dst: bigint, data: Uint8Array, mode = 0): number {
  return addon().uffdCopy(uffd, dst, data, mode);
}
/** UFFDIO_COPY from a range of a local mapping (no intermediate buffer). */
export function uffdCopyFromMapping(uffd: number, dst: bigint, src: Mapping, offset: number, len: number, mode = 0): number {
  return addon().uffdCopyFromMapping(uffd, dst, src, offset, len, mode);
}
export function uffdZeropage(uffd: number, start: bigint, len: number, mode = 0): number {
  return addon().uffdZeropage(uffd, start, len, mode);
}
/** Maps pages already in the page cache (minor-fault install path). */
export function uffdContinue(uffd: number, start: bigint, len: number, mode = 0): number {
  return addon().uffdContinue(uffd, start, len, mode);
}
export function uffdWake(uffd: number, start: bigint, len: number): void {
  addon().uffdWake(uffd, start, len);
}
/** protect = true sets write protection, false clears it. */
export function uffdWriteProtect(uffd: number, start: bigint, len: number, protect: boolean, dontWake = false): void {
  const c = addon().constants;
  addon().uffdWriteProtect(
    uffd,
    start,
    len,
    (protect ? c.UFFDIO_WRITEPROTECT_MODE_WP : 0) | (dontWake ? c.UFFDIO_WRITEPROTECT_MODE_DONTWAKE : 0),
  );
}

/**
 * Starts a native thread that polls `uffd` and delivers batches of events on
 * the JS thread. `onError` is called once if the reader stops on an error.
 * Sets O_NONBLOCK on the uffd's file description (poll needs it).
 */
export function startFaultReader(
  uffd: number,
  onEvents: (events: FaultEvent[]) => void,
  onError: (err: Error) => void = (err) => {
    throw err;
  },
  maxBatch = 256,
): FaultReaderHandle {
  const Ctor = addon().FaultReader;
  return new Ctor(
    uffd,
    (err, events) => {
      if (events.length > 0) onEvents(events);
      if (err !== null) onError(err);
    },
    maxBatch,
  );
}

// ---------------------------------------------------------------- PAGEMAP_SCAN

/** Opens /proc/PID/pagemap read-only (needs ptrace-read access to PID). */
export function openPagemap(pid: number | "self"): number {
  return openSync(`/proc/${pid}/pagemap`, "r");
}

/** PAGEMAP_SCAN over [start, end), following walk_end when the result buffer fills. */
export function pagemapScan(pagemapFd: number, start: bigint, end: bigint, opts: PagemapScanOptions = {}): PagemapScanResult {
  const raw = addon().pagemapScan(pagemapFd, start, end, opts);
  const regions: PageRegion[] = [];
  for (let i = 0; i + 2 < raw.regions.length; i += 3) {
    regions.push({ start: raw.regions[i], end: raw.regions[i + 1], categories: Number(raw.regions[i + 2]) });
  }
  return { regions, walkEnd: raw.walkEnd };
}

/**
 * The async-WP dirty log: pages written since the last call (or since the
 * range was write-protected), re-protected in the same walk. The range must
 * be registered for WP with UFFD_FEATURE_WP_ASYNC (else the kernel refuses
 * with EPERM because of PM_SCAN_CHECK_WPASYNC).
 */
export function scanWrittenAndProtect(pagemapFd: number, start: bigint, end: bigint, vecLen?: number): PageRegion[] {
  return pagemapScan(pagemapFd, start, end, writtenAndProtect(vecLen)).regions;
}

/**
 * scanWrittenAndProtect as a page list: the index of each written page of
 * [start, end) (start page-aligned), ascending, made natively (no object per
 * region: the dirty log of a 1 GiB guest's scattered writes is ~100 000 of them).
 */
export function scanWrittenPagesAndProtect(pagemapFd: number, start: bigint, end: bigint, pageSize: number, vecLen?: number): Uint32Array {
  return addon().pagemapScanPages(pagemapFd, start, end, pageSize, writtenAndProtect(vecLen));
}

function writtenAndProtect(vecLen: number | undefined): PagemapScanOptions {
  const c = addon().constants;
  return { flags: c.PM_SCAN_WP_MATCHING | c.PM_SCAN_CHECK_WPASYNC, categoryMask: c.PAGE_IS_WRITTEN, returnMask: c.PAGE_IS_WRITTEN, vecLen };
}
