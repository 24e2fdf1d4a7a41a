/**
 * The data plane's threads (issue 9; docs/real.md "Data plane"): the
 * source's bulk sender and the destination's bulk receiver
 * (native/src/bulk_sender.cc, bulk_receiver.cc), the memfd's data map, and
 * the page table of install mode "continue" (native/src/page_states.*).
 */
import { sendWayFromEnv, type SendWay } from "./dataplane.js";
import { loadAddon } from "./native-load.js";
import type { Mapping } from "./native.js";

/** What the source's bulk sender thread reports (batched through a ThreadSafeFunction). */
export interface BulkSenderEvent {
  /** room: its queue fell below the low-water mark; error: a read or write failed (once); flushed: close(true) is done. */
  kind: "room" | "error" | "flushed";
  error: Error | null;
}

/** The source's bulk connection owned by a native thread (native/src/bulk_sender.cc). */
export interface BulkSenderHandle {
  /** Queues a frame JS encoded; returns its size. niceAfter: the thread's nice once this frame is written (the switchover: what follows is background). */
  frame(bytes: Uint8Array, niceAfter?: number): number;
  /** Queues a pages frame whose data the thread reads from the memfd (zero[i] = 1: a zero page); returns its size. */
  pages(pages: Uint32Array, zero: Uint8Array): number;
  /** Bytes queued and not yet written to the kernel. */
  readonly queued: number;
  readonly written: number;
  /** flush: write what is queued, then report "flushed"; else stop now. */
  close(flush: boolean): void;
  /** Joins the thread and closes its fds. Idempotent. */
  stop(): void;
  /** Where the thread's time went, in ns: nothing queued, reading pages, writing, waiting for socket room. */
  /** way: how it moves pages (preadv unless asked otherwise and the pages are base pages). */
  stats(): { idleNs: number; fillNs: number; sendNs: number; waitNs: number; written: number; nice: number; niceErrno: number; way: SendWay };
}

/** What the destination's bulk receiver thread reports, in arrival order. */
export type BulkNotice =
  /** frames: how many consecutive pages frames these pages came in (the thread merges notices JS has not taken yet, up to 256 pages). */
  | { kind: "pages"; pages: Uint32Array; zero: Uint8Array; frames: number }
  /** refused: a header the thread would not read past (the decoder says why); the thread has ended. */
  | { kind: "frame"; bytes: Buffer; refused: boolean }
  /** reason "stall": the peer stopped mid-frame (silentMs, partial bytes); "closed": EOF; else what failed (error). */
  | { kind: "end"; protocol: boolean; reason: string; error: Error | null; silentMs: number; partial: number };

/** The destination's bulk connection read by a native thread that installs pages (native/src/bulk_receiver.cc). */
export interface BulkReceiverHandle {
  start(initial: Uint8Array): void;
  /**
   * With a page table: install mode "continue" (pwritev into the memfd, UFFDIO_CONTINUE, pages claimed once the guest may run).
   * With a zero-hole table instead (mode "copy", base pages): zero pages are left holes and marked (native/src/zero_holes.h).
   */
  setTarget(memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number, pageTable?: PageTableHandle | null, zeroHoles?: ZeroHoleTableHandle | null): void;
  setLimits(limits: Uint32Array): void;
  /** Benchmarks: pages frames are checked and dropped instead of installed. */
  discardPages(pageSize: number, pageCount: number): void;
  setRunning(): void;
  /** The thread's nice value from its next frame on. */
  setNice(nice: number): void;
  /** After a "frame" notice: JS has acted on it, installing may go on. */
  release(): void;
  stop(): void;
  /** Bytes of whole frames taken so far. */
  readonly received: number;
  /** Where the thread's time went, in ns: waiting for bytes, reading them, installing, waiting for JS. */
  /** lost: pages another path had claimed (install mode "continue"), their bytes dropped. */
  /** hugeDirect / hugeStaged: huge pages installed by UFFDIO_COPY straight from the frame, and through the staging copy (a kernel that wants src aligned). */
  stats(): { waitNs: number; recvNs: number; installNs: number; jsNs: number; pages: number; lost: number; received: number; hugeDirect: number; hugeStaged: number; nice: number; niceErrno: number };
}

/** What PageTable.install did: installed it; another path is receiving it (its map wakes the waiters); it was mapped already (waiters woken). */
export const TableInstall = { Installed: 0, Receiving: 1, Mapped: 2 } as const;

/**
 * Install mode "continue"'s per-page claims (native/src/page_states.h), shared with the bulk
 * receivers it is given to. Its own dups of the memfd and uffd (close() frees them).
 */
export interface PageTableHandle {
  /** guestRuns false: written and mapped, overwriting allowed; true: only if this call claims the page. */
  install(page: number, data: Uint8Array | null, guestRuns: boolean): number;
  /** UFFDIO_WAKE of the page unless another path receives it (false then: its map wakes). */
  wake(page: number): boolean;
  /** Pages punched out while nothing installs (the guest does not run yet). */
  markAbsent(pages: Uint32Array): void;
  /** 0 absent, 1 receiving, 2 mapped. */
  state(page: number): number;
  close(): void;
}

/**
 * The destination's zero pages left holes (native/src/zero_holes.h): marked by the bulk receivers
 * given it, and answered by the fault reader given it (a fault on one: UFFDIO_ZEROPAGE there).
 */
export interface ZeroHoleTableHandle {
  /** Pages punched out again to be fetched (the switchover's stale pages): no zero holes any more. */
  clear(pages: Uint32Array): void;
  /** Before the guest runs: JS wrote this page's data into the memfd itself (a zero resend must punch it). */
  wrote(page: number): void;
  /** 1: a zero hole; 2: a fault on it was sent on to be requested; 4: written before the guest ran (tests). */
  flags(page: number): number;
  /** Pages marked zero holes now. */
  readonly holes: number;
}

interface RawDataPlane {
  BulkSender: new (socketFd: number, memfd: number, pageSize: number, pageCount: number, lowWater: number, cb: (e: BulkSenderEvent) => void, nice: number, way: SendWay) => BulkSenderHandle;
  BulkReceiver: new (socketFd: number, limits: Uint32Array, stallMs: number, cb: (n: BulkNotice[]) => void, nice: number) => BulkReceiverHandle;
  PageTable: new (memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number, alias?: Mapping) => PageTableHandle;
  ZeroHoleTable: new (pageCount: number) => ZeroHoleTableHandle;
}

const addon = (): RawDataPlane => loadAddon<RawDataPlane>();

/** A native thread that writes the bulk connection: frames from JS, and pages frames whose data it moves from the memfd (`way`, dataplane.ts). */
export function startBulkSender(socketFd: number, memfd: number, pageSize: number, pageCount: number, lowWater: number, onEvent: (e: BulkSenderEvent) => void, nice = 0, way: SendWay = sendWayFromEnv()): BulkSenderHandle {
  const Ctor = addon().BulkSender;
  return new Ctor(socketFd, memfd, pageSize, pageCount, lowWater, onEvent, nice, way);
}

/** A native thread that reads the bulk connection and installs pages frames (start() it). `limits[tag]` bounds each frame's payload. */
export function createBulkReceiver(socketFd: number, limits: Uint32Array, stallMs: number, onNotices: (n: BulkNotice[]) => void, nice = 0): BulkReceiverHandle {
  const Ctor = addon().BulkReceiver;
  return new Ctor(socketFd, limits, stallMs, onNotices, nice);
}

/**
 * The claims of install mode "continue" over a guest's memfd and uffd (its RAM at `base`).
 * `alias`: the memfd was populated whole before the migration (dest-prealloc.ts), and this is its
 * mapping, every page mapped: the table takes it over (the Mapping is unmapped from then on) and
 * writes pages through it; a zero page is mapped from the page cache, never written.
 */
export function createPageTable(memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number, alias: Mapping | null = null): PageTableHandle {
  const Ctor = addon().PageTable;
  return alias === null ? new Ctor(memfd, uffd, base, pageSize, pageCount) : new Ctor(memfd, uffd, base, pageSize, pageCount, alias);
}

/** An empty zero-hole table for a guest of `pageCount` base pages. */
export function createZeroHoleTable(pageCount: number): ZeroHoleTableHandle {
  const Ctor = addon().ZeroHoleTable;
  return new Ctor(pageCount);
}
