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
 * See docs/native.md. This module holds memory (memfd, pread/pwrite,
 * mappings) and the constants; one module per other kernel interface —
 * native-uffd.ts (userfaultfd, PAGEMAP_SCAN), native-socket.ts (unix sockets,
 * SCM_RIGHTS, SO_SNDBUF), native-dataplane.ts (the bulk threads) — re-exported
 * here, so callers import from this one. native-load.ts finds and loads the addon.
 */
import { loadAddon, type U64 } from "./native-load.js";

export { guestExecutablePath, nativeDir } from "./native-load.js";
export * from "./native-uffd.js";
export * from "./native-socket.js";
export * from "./native-dataplane.js";
export * from "./native-lane.js";

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
  /**
   * Every page faulted in writable (MADV_POPULATE_WRITE) on a libuv pool thread: a memfd's missing
   * pages allocated and zeroed — a first write to each — and all of them mapped here.
   */
  populateAsync(): Promise<void>;
  /** munmap; throws EBUSY while a touchAsync is in flight. Idempotent. */
  unmap(): void;
}

export interface NativeConstants {
  readonly UFFD_FEATURE_PAGEFAULT_FLAG_WP: number;
  readonly UFFD_FEATURE_MISSING_SHMEM: number;
  readonly UFFD_FEATURE_MISSING_HUGETLBFS: number;
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

/** The part of the raw addon native/src/mem.cc exports (and the constants). */
interface RawMemory {
  constants: NativeConstants;
  memfdCreate(name: string, size: U64, hugePageSize?: U64): number;
  ftruncate(fd: number, size: U64): void;
  close(fd: number): void;
  punchHole(fd: number, offset: U64, length: U64): void;
  punchPages(fd: number, pages: Uint32Array, pageSize: number): number;
  memfdDataPages(fd: number, firstPage: number, count: number, pageSize: number, bounded?: boolean): Uint8Array;
  residentPages(address: bigint, count: number, pageSize: number): Uint8Array;
  pread(fd: number, offset: U64, length: number): Buffer;
  pwrite(fd: number, offset: U64, data: Uint8Array): void;
  Mapping: new (fd: number, length: number, offset?: number) => Mapping;
}

const addon = (): RawMemory => loadAddon<RawMemory>();

/** Kernel constants (UFFD_*, UFFDIO_*, PAGE_IS_*, PM_SCAN_*, PAGE_SIZE). */
export function constants(): NativeConstants {
  return addon().constants;
}

// ---------------------------------------------------------------- memory

/** memfd_create(name, MFD_CLOEXEC [| MFD_HUGETLB of that page size]) + ftruncate(size). */
export function memfdCreate(name: string, size: number, hugePageSize = 0): number {
  return addon().memfdCreate(name, size, hugePageSize);
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

/** Punches every page of `pages` (ascending, no repeats): one fallocate per run of consecutive pages, in one native call. Returns the calls made. */
export function punchPages(fd: number, pages: Uint32Array, pageSize: number): number {
  return addon().punchPages(fd, pages, pageSize);
}
/**
 * 1 for each of `count` pages from `firstPage` that holds data in the memfd, 0 for a hole (lseek
 * SEEK_DATA/SEEK_HOLE). `bounded`: no SEEK_HOLE, so the call costs O(count) however far the next
 * hole is (native/src/mem.cc).
 */
export function memfdDataPages(fd: number, firstPage: number, count: number, pageSize: number, bounded = false): Uint8Array {
  return addon().memfdDataPages(fd, firstPage, count, pageSize, bounded);
}
/**
 * Per page of a MAP_SHARED memfd mapping from `address`: 1 if it is in the file's page cache (mincore;
 * no inode lock, unlike lseek(SEEK_DATA), which the punching thread's fallocate holds up). For shmem
 * that is "holds data" while no page is swapped out (source-port.ts checks). At most 2^24 pages a call.
 */
export function residentPages(address: bigint, count: number, pageSize: number): Uint8Array {
  return addon().residentPages(address, count, pageSize);
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

/** Narrows an unknown error to its errno name (`code`), if it has one. */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof Error && "code" in err && typeof err.code === "string") return err.code;
  return undefined;
}
