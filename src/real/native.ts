/**
 * Typed access to the native addon (native/build/Release/ppsim_native.node).
 *
 * The addon wraps kernel interfaces only: memfd, shared mappings, userfaultfd
 * ioctls, a fault reader thread, PAGEMAP_SCAN and unix sockets with
 * SCM_RIGHTS. Every failing system call throws an Error whose `code` is the
 * errno name (e.g. "EEXIST") and whose message says what was attempted, e.g.
 * `UFFDIO_COPY(dst 0x7f..., len 4096) failed: EEXIST (File exists)`.
 *
 * Addresses are bigints (they are 64-bit); sizes and offsets are numbers.
 * See docs/native.md.
 */
import { existsSync, openSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** One event read from a userfaultfd. `event` is UFFD_EVENT_* (0x12 = page fault). */
export interface FaultEvent {
  event: number;
  /** Faulting address (not page aligned unless the kernel rounds it; mask it). */
  address: bigint;
  /** UFFD_PAGEFAULT_FLAG_* (WRITE = 1, WP = 2, MINOR = 4). */
  flags: number;
  /** Faulting thread id, when the uffd was created with UFFD_FEATURE_THREAD_ID; else 0. */
  tid: number;
}

/**
 * A MAP_SHARED mapping of an fd, as an opaque handle: reads and writes copy,
 * so no JS buffer can outlive `unmap()`. Loads through a mapping of a memfd
 * hole allocate the page (shmem); use `pread` to read a page that may not
 * exist yet. At a running destination registered for MISSING faults only,
 * never fill a page with `write` — use UFFDIO_COPY (see DESIGN.md).
 */
export interface Mapping {
  readonly address: bigint;
  readonly length: number;
  readonly mapped: boolean;
  read(offset: number, length: number): Buffer;
  readInto(offset: number, target: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
  readU64(offset: number): bigint;
  writeU64(offset: number, value: bigint): void;
  /**
   * Loads (or stores `value` into) the aligned u64 at `offset` on a libuv
   * pool thread and resolves with the value seen. It may block in a
   * userfaultfd fault without blocking the event loop: a test tool.
   */
  touchAsync(offset: number, value?: bigint): Promise<bigint>;
  /** munmap; throws EBUSY while a touchAsync is in flight. Idempotent. */
  unmap(): void;
}

export interface FaultReaderHandle {
  /** Stops and joins the reader thread; batches already queued may still be delivered. Idempotent. */
  stop(): void;
  /** Let (or stop letting) the reader keep the process alive. */
  ref(): void;
  unref(): void;
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

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

export interface ReceivedFds {
  data: Buffer;
  fds: number[];
}

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
  stats(): { idleNs: number; fillNs: number; sendNs: number; waitNs: number; written: number; nice: number; niceErrno: number };
}

/** What the destination's bulk receiver thread reports, in arrival order. */
export type BulkNotice =
  | { kind: "pages"; pages: Uint32Array; zero: Uint8Array }
  /** refused: a header the thread would not read past (the decoder says why); the thread has ended. */
  | { kind: "frame"; bytes: Buffer; refused: boolean }
  /** reason "stall": the peer stopped mid-frame (silentMs, partial bytes); "closed": EOF; else what failed (error). */
  | { kind: "end"; protocol: boolean; reason: string; error: Error | null; silentMs: number; partial: number };

/** The destination's bulk connection read by a native thread that installs pages (native/src/bulk_receiver.cc). */
export interface BulkReceiverHandle {
  start(initial: Uint8Array): void;
  setTarget(memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number): void;
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
  stats(): { waitNs: number; recvNs: number; installNs: number; jsNs: number; pages: number; received: number; nice: number; niceErrno: number };
}

export interface NativeConstants {
  readonly UFFD_FEATURE_PAGEFAULT_FLAG_WP: number;
  readonly UFFD_FEATURE_MISSING_SHMEM: number;
  readonly UFFD_FEATURE_THREAD_ID: number;
  readonly UFFD_FEATURE_MINOR_SHMEM: number;
  readonly UFFD_FEATURE_EXACT_ADDRESS: number;
  readonly UFFD_FEATURE_WP_HUGETLBFS_SHMEM: number;
  readonly UFFD_FEATURE_WP_UNPOPULATED: number;
  readonly UFFD_FEATURE_WP_ASYNC: number;
  readonly UFFD_FEATURE_MOVE: number;
  readonly UFFDIO_REGISTER_MODE_MISSING: number;
  readonly UFFDIO_REGISTER_MODE_WP: number;
  readonly UFFDIO_REGISTER_MODE_MINOR: number;
  readonly UFFDIO_COPY_MODE_DONTWAKE: number;
  readonly UFFDIO_COPY_MODE_WP: number;
  readonly UFFDIO_ZEROPAGE_MODE_DONTWAKE: number;
  readonly UFFDIO_CONTINUE_MODE_DONTWAKE: number;
  readonly UFFDIO_WRITEPROTECT_MODE_WP: number;
  readonly UFFDIO_WRITEPROTECT_MODE_DONTWAKE: number;
  readonly UFFD_PAGEFAULT_FLAG_WRITE: number;
  readonly UFFD_PAGEFAULT_FLAG_WP: number;
  readonly UFFD_PAGEFAULT_FLAG_MINOR: number;
  readonly UFFD_EVENT_PAGEFAULT: number;
  readonly PAGE_IS_WPALLOWED: number;
  readonly PAGE_IS_WRITTEN: number;
  readonly PAGE_IS_FILE: number;
  readonly PAGE_IS_PRESENT: number;
  readonly PAGE_IS_SWAPPED: number;
  readonly PAGE_IS_PFNZERO: number;
  readonly PAGE_IS_HUGE: number;
  readonly PAGE_IS_SOFT_DIRTY: number;
  readonly PM_SCAN_WP_MATCHING: number;
  readonly PM_SCAN_CHECK_WPASYNC: number;
  /** The host page size. */
  readonly PAGE_SIZE: number;
}

type U64 = number | bigint;

/** The raw addon, as exported by native/src/*.cc. */
interface RawAddon {
  constants: NativeConstants;
  memfdCreate(name: string, size: U64): number;
  ftruncate(fd: number, size: U64): void;
  close(fd: number): void;
  punchHole(fd: number, offset: U64, length: U64): void;
  pread(fd: number, offset: U64, length: number): Buffer;
  pwrite(fd: number, offset: U64, data: Uint8Array): void;
  Mapping: new (fd: number, length: number, offset?: number) => Mapping;
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
  unixListen(path: string): number;
  unixConnect(path: string): number;
  unixAccept(fd: number, timeoutMs?: number): Promise<number>;
  socketPair(): [number, number];
  peerCred(fd: number): PeerCred;
  setSendBuffer(fd: number, bytes: number): number;
  sendFds(fd: number, data: Uint8Array, fds: number[]): void;
  recvFds(fd: number, length: number, maxFds?: number, timeoutMs?: number): Promise<ReceivedFds>;
  BulkSender: new (socketFd: number, memfd: number, pageSize: number, pageCount: number, lowWater: number, cb: (e: BulkSenderEvent) => void, nice: number) => BulkSenderHandle;
  BulkReceiver: new (socketFd: number, limits: Uint32Array, stallMs: number, cb: (n: BulkNotice[]) => void, nice: number) => BulkReceiverHandle;
  memfdDataPages(fd: number, firstPage: number, count: number, pageSize: number): Uint8Array;
}

/** The folder holding binding.gyp, found upward from this file (works from src/ and dist/src/). */
export function nativeDir(): string {
  const fromEnv = process.env.PPSIM_NATIVE_DIR;
  if (fromEnv !== undefined && fromEnv !== "") return fromEnv;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "native");
    if (existsSync(join(candidate, "binding.gyp"))) return candidate;
    const up = dirname(dir);
    if (up === dir) throw new Error("ppsim: cannot find the native/ folder (binding.gyp) above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

/** Path of the guest executable built next to the addon. */
export function guestExecutablePath(): string {
  const p = join(nativeDir(), "build", "Release", "ppsim-guest");
  if (!existsSync(p)) throw new Error(`ppsim: the guest executable ${p} is not built; run npm run build:native`);
  return p;
}

let cached: RawAddon | undefined;

function addon(): RawAddon {
  if (cached !== undefined) return cached;
  const path = join(nativeDir(), "build", "Release", "ppsim_native.node");
  if (!existsSync(path)) throw new Error(`ppsim: the native addon ${path} is not built; run npm run build:native`);
  const require = createRequire(import.meta.url);
  try {
    cached = require(path) as RawAddon;
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new Error(`ppsim: loading the native addon ${path} failed (${msg}); run npm run build:native`);
  }
  return cached;
}

/** Kernel constants (UFFD_*, UFFDIO_*, PAGE_IS_*, PM_SCAN_*, PAGE_SIZE). */
export function constants(): NativeConstants {
  return addon().constants;
}

// ---------------------------------------------------------------- memory

/** memfd_create(name, MFD_CLOEXEC) + ftruncate(size). */
export function memfdCreate(name: string, size: number): number {
  return addon().memfdCreate(name, size);
}
export function ftruncate(fd: number, size: number): void {
  addon().ftruncate(fd, size);
}
export function closeFd(fd: number): void {
  addon().close(fd);
}
/** fallocate(PUNCH_HOLE|KEEP_SIZE): the range becomes missing again. */
export function punchHole(fd: number, offset: number, length: number): void {
  addon().punchHole(fd, offset, length);
}
/** pread: a hole reads as zeros and is not allocated. */
export function pread(fd: number, offset: number, length: number): Buffer {
  return addon().pread(fd, offset, length);
}
export function pwrite(fd: number, offset: number, data: Uint8Array): void {
  addon().pwrite(fd, offset, data);
}
/** mmap(PROT_READ|PROT_WRITE, MAP_SHARED) of fd. */
export function mapShared(fd: number, length: number, offset = 0): Mapping {
  const Ctor = addon().Mapping;
  return new Ctor(fd, length, offset);
}

// ---------------------------------------------------------------- userfaultfd

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
  const c = addon().constants;
  return pagemapScan(pagemapFd, start, end, {
    flags: c.PM_SCAN_WP_MATCHING | c.PM_SCAN_CHECK_WPASYNC,
    categoryMask: c.PAGE_IS_WRITTEN,
    returnMask: c.PAGE_IS_WRITTEN,
    vecLen,
  }).regions;
}

// ---------------------------------------------------------------- unix sockets

/** socket+bind+listen on a path (the caller removes the path afterwards). */
export function unixListen(path: string): number {
  return addon().unixListen(path);
}
export function unixConnect(path: string): number {
  return addon().unixConnect(path);
}
/** Accepts one connection on a pool thread; rejects with code ETIMEDOUT after timeoutMs (< 0: never). */
export function unixAccept(listenFd: number, timeoutMs = -1): Promise<number> {
  return addon().unixAccept(listenFd, timeoutMs);
}
export function socketPair(): [number, number] {
  return addon().socketPair();
}
/** SO_PEERCRED of a connected unix socket. */
export function peerCred(fd: number): PeerCred {
  return addon().peerCred(fd);
}
/**
 * SO_SNDBUF of a socket: bounds the bytes the kernel queues for it. Returns
 * the size the kernel reports (double what was asked: its bookkeeping).
 */
export function setSendBuffer(fd: number, bytes: number): number {
  return addon().setSendBuffer(fd, bytes);
}
// ---------------------------------------------------------------- the data plane (issue 9)

/** A native thread that writes the bulk connection: frames from JS, and pages frames it fills from the memfd. */
export function startBulkSender(socketFd: number, memfd: number, pageSize: number, pageCount: number, lowWater: number, onEvent: (e: BulkSenderEvent) => void, nice = 0): BulkSenderHandle {
  const Ctor = addon().BulkSender;
  return new Ctor(socketFd, memfd, pageSize, pageCount, lowWater, onEvent, nice);
}

/** A native thread that reads the bulk connection and installs pages frames (start() it). `limits[tag]` bounds each frame's payload. */
export function createBulkReceiver(socketFd: number, limits: Uint32Array, stallMs: number, onNotices: (n: BulkNotice[]) => void, nice = 0): BulkReceiverHandle {
  const Ctor = addon().BulkReceiver;
  return new Ctor(socketFd, limits, stallMs, onNotices, nice);
}

/** 1 for each of `count` pages from `firstPage` that holds data in the memfd, 0 for a hole (lseek SEEK_DATA/SEEK_HOLE). */
export function memfdDataPages(fd: number, firstPage: number, count: number, pageSize: number): Uint8Array {
  return addon().memfdDataPages(fd, firstPage, count, pageSize);
}

/** sendmsg with SCM_RIGHTS: the fds ride on data's first byte (data must not be empty). */
export function sendFds(fd: number, data: Uint8Array, fds: number[]): void {
  addon().sendFds(fd, data, fds);
}
/** Receives exactly `length` bytes and the fds that came with them (MSG_CMSG_CLOEXEC). */
export function recvFds(fd: number, length: number, maxFds = 8, timeoutMs = -1): Promise<ReceivedFds> {
  return addon().recvFds(fd, length, maxFds, timeoutMs);
}

/** Narrows an unknown error to its errno name (`code`), if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error && "code" in err && typeof err.code === "string") return err.code;
  return undefined;
}
