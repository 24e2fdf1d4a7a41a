/**
 * The native addon's kernel wrappers, in-process: userfaultfd fault round
 * trip, EEXIST reporting, SCM_RIGHTS, PAGEMAP_SCAN with async write-protect.
 * Needs `npm run build:native` first. Nothing here depends on timing.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  closeFd,
  constants,
  errnoCode,
  mapShared,
  memfdCreate,
  openPagemap,
  pagemapScan,
  peerCred,
  pread,
  punchHole,
  punchPages,
  recvFds,
  scanWrittenAndProtect,
  scanWrittenPagesAndProtect,
  sendFds,
  setSendBuffer,
  socketPair,
  startFaultReader,
  uffdApi,
  uffdCopy,
  uffdCreate,
  uffdRegister,
  uffdWriteProtect,
  uffdZeropage,
  type FaultEvent,
  type Mapping,
} from "../src/real/native.js";

const C = constants();
const PS = C.PAGE_SIZE;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

/** A memfd of `pages` pages mapped here, registered MISSING on a fresh uffd. */
function missingRegion(pages: number): { fd: number; map: Mapping; uffd: number } {
  const fd = memfdCreate("test-missing", pages * PS);
  const map = mapShared(fd, pages * PS);
  const uffd = uffdCreate();
  uffdApi(uffd, C.UFFD_FEATURE_THREAD_ID | C.UFFD_FEATURE_MISSING_SHMEM);
  uffdRegister(uffd, map.address, pages * PS, C.UFFDIO_REGISTER_MODE_MISSING);
  cleanups.push(() => {
    map.unmap();
    closeFd(uffd);
    closeFd(fd);
  });
  return { fd, map, uffd };
}

function pattern(seed: number): Buffer {
  const b = Buffer.alloc(PS);
  for (let i = 0; i < PS; i += 4) b.writeUInt32LE((seed * 2654435761 + i) >>> 0, i);
  return b;
}

describe("userfaultfd", () => {
  it("reports a missing-page fault and resolves it with UFFDIO_COPY", async () => {
    const { fd, map, uffd } = missingRegion(8);
    const seen: FaultEvent[] = [];
    const page = 5;
    const reader = startFaultReader(uffd, (events) => {
      for (const e of events) {
        seen.push(e);
        const addr = e.address & ~BigInt(PS - 1);
        uffdCopy(uffd, addr, pattern(Number((addr - map.address) / BigInt(PS))));
      }
    });
    try {
      // A pool thread loads from the missing page and sleeps in the kernel
      // until the copy above installs it.
      const value = await map.touchAsync(page * PS + 16);
      expect(value).toBe(pattern(page).readBigUInt64LE(16));
    } finally {
      reader.stop();
    }
    expect(seen.length).toBe(1);
    expect(seen[0].event).toBe(C.UFFD_EVENT_PAGEFAULT);
    expect(seen[0].address & ~BigInt(PS - 1)).toBe(map.address + BigInt(page * PS));
    expect(seen[0].flags & C.UFFD_PAGEFAULT_FLAG_WRITE).toBe(0);
    expect(seen[0].tid).toBeGreaterThan(0);
    // The page is now in the memfd: the whole page matches.
    expect(pread(fd, page * PS, PS).equals(pattern(page))).toBe(true);
  });

  it("reports a write fault's flag and installs a zero page", async () => {
    const { map, uffd } = missingRegion(4);
    const flags: number[] = [];
    const reader = startFaultReader(uffd, (events) => {
      for (const e of events) {
        flags.push(e.flags);
        uffdZeropage(uffd, e.address & ~BigInt(PS - 1), PS);
      }
    });
    try {
      // A store to a missing page: the fault is a write fault; after the
      // zero page is installed the store completes and reads back.
      expect(await map.touchAsync(2 * PS, 0x1234n)).toBe(0x1234n);
    } finally {
      reader.stop();
    }
    expect(flags).toHaveLength(1);
    expect(flags[0] & C.UFFD_PAGEFAULT_FLAG_WRITE).toBe(C.UFFD_PAGEFAULT_FLAG_WRITE);
    expect(map.readU64(2 * PS + 8)).toBe(0n);
  });

  it("reports EEXIST on a second UFFDIO_COPY of the same page", () => {
    const { map, uffd } = missingRegion(2);
    uffdCopy(uffd, map.address, pattern(1));
    let err: unknown;
    try {
      uffdCopy(uffd, map.address, pattern(2));
    } catch (e) {
      err = e;
    }
    expect(errnoCode(err)).toBe("EEXIST");
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^UFFDIO_COPY\(dst 0x[0-9a-f]+, len 4096\) failed: EEXIST \(File exists\)$/);
    expect((err as { errno?: number }).errno).toBe(17);
    // The first copy stands.
    expect(map.read(0, PS).equals(pattern(1))).toBe(true);
  });

  it("makes a page missing again after PUNCH_HOLE", () => {
    const { fd, map, uffd } = missingRegion(2);
    uffdCopy(uffd, map.address + BigInt(PS), pattern(3));
    punchHole(fd, PS, PS);
    // Installing again succeeds: the page was missing again.
    uffdCopy(uffd, map.address + BigInt(PS), pattern(4));
    expect(map.read(PS, PS).equals(pattern(4))).toBe(true);
  });

  it("punches a sorted page list run by run, in one call, and leaves the other pages as they were", () => {
    const { fd, map, uffd } = missingRegion(8);
    for (let p = 0; p < 8; p++) uffdCopy(uffd, map.address + BigInt(p * PS), pattern(p + 1));
    // Runs [1], [3, 4, 5], [7]: three fallocate calls.
    expect(punchPages(fd, Uint32Array.of(1, 3, 4, 5, 7), PS)).toBe(3);
    for (const p of [1, 3, 4, 5, 7]) uffdCopy(uffd, map.address + BigInt(p * PS), pattern(20 + p)); // missing again: installs succeed
    for (const [p, tag] of [[0, 1], [2, 3], [6, 7], [4, 24]]) expect(map.read(p * PS, PS).equals(pattern(tag)), `page ${p}`).toBe(true);
    expect(punchPages(fd, new Uint32Array(0), PS)).toBe(0);
    expect(() => punchPages(fd, Uint32Array.of(3, 2), PS)).toThrow(/ascending without repeats/);
    expect(() => punchPages(fd, Uint32Array.of(2, 2), PS)).toThrow(/ascending without repeats/);
    expect(() => punchPages(fd, Uint32Array.of(1), 3000)).toThrow(/power of two/);
    expect(() => punchPages(-1, Uint32Array.of(1), PS)).toThrow();
  });

  it("turns bad arguments into TypeErrors and RangeErrors, not crashes", () => {
    const { map, uffd } = missingRegion(1);
    expect(() => map.read(PS, 1)).toThrow(RangeError);
    expect(() => uffdCopy(uffd, map.address, "x" as unknown as Uint8Array)).toThrow(TypeError);
    let err: unknown;
    try {
      uffdCopy(uffd, map.address + 1n, pattern(0)); // unaligned dst
    } catch (e) {
      err = e;
    }
    expect(errnoCode(err)).toBe("EINVAL");
  });
});

describe("SCM_RIGHTS", () => {
  it("passes a memfd: a write through one mapping reads back through the other", async () => {
    const fd = memfdCreate("scm", 4 * PS);
    const [a, b] = socketPair();
    sendFds(a, Buffer.from("layout!"), [fd]);
    const got = await recvFds(b, 7, 4, 5000);
    expect(got.data.toString()).toBe("layout!");
    expect(got.fds).toHaveLength(1);
    expect(got.fds[0]).not.toBe(fd); // a new descriptor for the same file
    const m1 = mapShared(fd, 4 * PS);
    const m2 = mapShared(got.fds[0], 4 * PS);
    m1.write(3 * PS + 100, Buffer.from("through the first mapping"));
    expect(m2.read(3 * PS + 100, 25).toString()).toBe("through the first mapping");
    m2.writeU64(0, 0xfeedn);
    expect(m1.readU64(0)).toBe(0xfeedn);
    expect(peerCred(b).pid).toBe(process.pid);
    m1.unmap();
    m2.unmap();
    expect(() => m1.read(0, 1)).toThrow(/unmapped/);
    for (const f of [fd, got.fds[0], a, b]) closeFd(f);
  });

  it("rejects with ECONNRESET when the peer closes early", async () => {
    const [a, b] = socketPair();
    sendFds(a, Buffer.from("ab"), []);
    closeFd(a);
    await expect(recvFds(b, 10, 1, 5000)).rejects.toMatchObject({ code: "ECONNRESET" });
    closeFd(b);
  });
});

describe("socket send buffer", () => {
  it("bounds SO_SNDBUF, reporting the kernel's doubled size; a bad fd is an errno error", () => {
    const [a, b] = socketPair();
    try {
      expect(setSendBuffer(a, 64 * 1024)).toBe(128 * 1024);
    } finally {
      closeFd(a);
      closeFd(b);
    }
    let err: unknown;
    try {
      setSendBuffer(a, 4096);
    } catch (e) {
      err = e;
    }
    expect(errnoCode(err)).toBe("EBADF");
    expect((err as Error).message).toMatch(/setsockopt\(SO_SNDBUF\)/);
  });
});

describe("PAGEMAP_SCAN with async write-protect", () => {
  /** A memfd of `pages` mapped here, `present` pages written first, then registered for async WP and protected. */
  function tracked(name: string, pages: number, present: number[]) {
    const fd = memfdCreate(name, pages * PS);
    const map = mapShared(fd, pages * PS);
    for (const p of present) map.writeU64(p * PS, 1n);
    const uffd = uffdCreate();
    uffdApi(uffd, C.UFFD_FEATURE_WP_ASYNC | C.UFFD_FEATURE_WP_UNPOPULATED | C.UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
    uffdRegister(uffd, map.address, pages * PS, C.UFFDIO_REGISTER_MODE_WP);
    uffdWriteProtect(uffd, map.address, pages * PS, true);
    const pm = openPagemap("self");
    return { fd, map, uffd, pm, start: map.address, end: map.address + BigInt(pages * PS) };
  }

  it("lists the written pages natively, the same pages as the regions, however many calls the walk takes", () => {
    const { fd, map, uffd, pm, start, end } = tracked("wp-pages", 512, Array.from({ length: 171 }, (_, i) => i * 3));
    try {
      expect(Array.from(scanWrittenPagesAndProtect(pm, start, end, PS))).toEqual([]);
      // Runs and single pages, present pages and holes, the first and the last page.
      const want = [0, 1, 2, 3, 7, 100, 101, 102, 103, 104, 105, 200, 300, 301, 510, 511];
      const write = () => {
        for (const p of want) map.writeU64(p * PS + 16, BigInt(p));
      };
      write();
      const regions = scanWrittenAndProtect(pm, start, end);
      const fromRegions: number[] = [];
      for (const r of regions) for (let a = r.start; a < r.end; a += BigInt(PS)) fromRegions.push(Number((a - start) / BigInt(PS)));
      expect(fromRegions).toEqual(want);
      for (const vecLen of [1, 2, 1024]) {
        write();
        const got = scanWrittenPagesAndProtect(pm, start, end, PS, vecLen);
        expect(got).toBeInstanceOf(Uint32Array);
        expect(Array.from(got)).toEqual(want);
        expect(Array.from(scanWrittenPagesAndProtect(pm, start, end, PS, vecLen))).toEqual([]); // re-protected
      }
      // A range that starts inside the memory: indices are relative to its start.
      write();
      expect(Array.from(scanWrittenPagesAndProtect(pm, start + BigInt(100 * PS), start + BigInt(106 * PS), PS))).toEqual([0, 1, 2, 3, 4, 5]);
      expect(() => scanWrittenPagesAndProtect(pm, start, end, 3000)).toThrow(/power of two/);
      expect(() => scanWrittenPagesAndProtect(pm, start + 8n, end, PS)).toThrow(/page-aligned/);
      expect(() => scanWrittenPagesAndProtect(pm, end, start, PS)).toThrow(/start > end/);
    } finally {
      map.unmap();
      closeFd(pm);
      closeFd(uffd);
      closeFd(fd);
    }
  });

  it("reports exactly the pages written between two scans", () => {
    // Some pages exist before tracking starts, others are holes.
    const { fd, map, uffd, pm, start, end } = tracked("wp", 64, [0, 1, 2, 10, 40]);
    const pagesOf = (vecLen?: number): number[] => {
      const out: number[] = [];
      for (const r of scanWrittenAndProtect(pm, start, end, vecLen)) {
        for (let a = r.start; a < r.end; a += BigInt(PS)) out.push(Number((a - start) / BigInt(PS)));
      }
      return out;
    };
    try {
      expect(pagesOf()).toEqual([]);
      // Writes to present pages and to holes; a read does not count.
      for (const p of [1, 3, 4, 5, 10, 20, 63]) map.writeU64(p * PS + 8, BigInt(p));
      void map.readU64(40 * PS);
      // vecLen 1 forces one ioctl per region: the scan continues from walk_end.
      expect(pagesOf(1)).toEqual([1, 3, 4, 5, 10, 20, 63]);
      expect(pagesOf()).toEqual([]); // re-protected by the previous scan
      map.writeU64(4 * PS, 9n);
      map.writeU64(62 * PS, 9n);
      expect(pagesOf()).toEqual([4, 62]);
      // A plain query (no WP) sees pages as present.
      const present = pagemapScan(pm, start, end, { categoryMask: C.PAGE_IS_PRESENT, returnMask: C.PAGE_IS_PRESENT });
      expect(present.regions.length).toBeGreaterThan(0);
      expect(present.walkEnd).toBe(end);
    } finally {
      map.unmap();
      closeFd(pm);
      closeFd(uffd);
      closeFd(fd);
    }
  });
});
