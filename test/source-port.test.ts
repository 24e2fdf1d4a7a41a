/**
 * The source's window on guest RAM with the native data plane
 * (src/real/source-port.ts): which pages are DEFERRED (hold data) and which
 * are zero pages (holes), in whatever order the engine asks — a pre-copy
 * round's scattered dirty pages, demand replies, runs — and what that costs
 * in page-cache walks. lseek(SEEK_HOLE) walks to the next hole, which in a
 * fully written guest is the end of its memory: a lookup per page or per
 * window made memory-scan's pre-copy spend 89 % of the source's CPU there
 * (docs/host-profile.md). The port walks once; the dirty log keeps the map.
 * Post-copy learns it a window at a time, by mincore (the default) or lseek.
 */
import { openSync } from "node:fs";
import fc from "fast-check";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { GuestProcess } from "../src/real/guest-process.js";
import { DEFERRED } from "../src/real/dataplane.js";

const calls: { first: number; count: number; bounded: boolean }[] = [];
/** Bytes of each pread the port made (its reads without the native data plane). */
const preads: number[] = [];
/** What the mocked dirty log reports next (pages), as PAGEMAP_SCAN would. */
let written: number[] = [];

vi.mock("../src/real/native.js", async (importOriginal) => {
  const real = await importOriginal<typeof import("../src/real/native.js")>();
  return {
    ...real,
    memfdDataPages: (fd: number, first: number, count: number, ps: number, bounded = false) => {
      calls.push({ first, count, bounded });
      return real.memfdDataPages(fd, first, count, ps, bounded);
    },
    // Post-copy's other way to learn the map (mincore on the agent's mapping): counted with the same bounds.
    residentPages: (address: bigint, count: number, ps: number) => {
      calls.push({ first: Number((address - mapBase) / BigInt(real.constants().PAGE_SIZE)), count, bounded: true });
      return real.residentPages(address, count, ps);
    },
    pread: (fd: number, offset: number, length: number) => {
      preads.push(length);
      return real.pread(fd, offset, length);
    },
    scanWrittenPagesAndProtect: () => {
      const out = Uint32Array.from(written).sort(); // the native call's contract: ascending
      written = [];
      return out;
    },
  };
});

/** The agent's mapping of the latest test guest (residentPages' addresses are relative to it). */
let mapBase = 0n;

const { closeFd, constants, mapShared, memfdCreate, pwrite } = await import("../src/real/native.js");
// The addon's own function, not the counting mock above.
const realNative = await vi.importActual<typeof import("../src/real/native.js")>("../src/real/native.js");
const { SourceMemoryPort } = await import("../src/real/source-port.js");

const PS = constants().PAGE_SIZE;
const PAGES = 1024;
const cleanups: (() => void)[] = [];

afterEach(() => {
  vi.unstubAllEnvs();
  while (cleanups.length > 0) cleanups.pop()?.();
  calls.length = 0;
  preads.length = 0;
  written = [];
});

/** A guest whose memfd holds data on every page except those in `holes`. */
function guest(holes: Set<number>): { g: GuestProcess; fd: number } {
  const fd = memfdCreate("port-src", PAGES * PS);
  cleanups.push(() => closeFd(fd));
  for (let p = 0; p < PAGES; p++) if (!holes.has(p)) pwrite(fd, p * PS, Buffer.alloc(PS, (p % 251) + 1));
  // Stands in for /proc/PID/pagemap (the dirty log is mocked); the port's close() closes it.
  const openPagemap = (): number => openSync("/dev/null", "r");
  const memory = mapShared(fd, PAGES * PS);
  cleanups.push(() => memory.unmap());
  mapBase = memory.address;
  const g = { memfd: fd, memory, layout: { pageSize: PS, memBytes: PAGES * PS, base: 0n }, openPagemap } as unknown as GuestProcess;
  return { g, fd };
}

/** A fixed scattered order (a pre-copy round's dirty pages, demand replies): every page once, never two neighbours in a row. */
function scattered(): number[] {
  const out: number[] = [];
  for (let k = 0; k < PAGES; k++) out.push((k * 389) % PAGES); // 389 is prime to 1024
  return out;
}

describe("SourceMemoryPort with the native data plane", () => {
  it("tracked, tells data from holes in any order, with one page-cache walk", () => {
    const holes = new Set([0, 5, 6, 7, 300, 511, 512, 1023]);
    const { g } = guest(holes);
    const port = new SourceMemoryPort(g, true, true);
    port.collectDirty(); // tracking starts before any page is read
    const seen = new Map<number, boolean>();
    for (const p of scattered()) seen.set(p, port.readPage(p) === DEFERRED);
    for (let p = 0; p < PAGES; p++) expect(seen.get(p), `page ${p}`).toBe(!holes.has(p));
    // A run (the background push) after the scattered pages: still the same map.
    for (let p = 100; p < 400; p++) expect(port.readPage(p)).toBe(holes.has(p) ? null : DEFERRED);
    expect(calls.length).toBe(1);
    expect(calls[0]).toEqual({ first: 0, count: PAGES, bounded: false });
    port.close();
  });

  for (const way of ["mincore", "seek"] as const)
  it(`untracked (post-copy, ${way}), learns the map as pages are asked: a window along a run, a page alone off it, every lookup bounded, none asked twice`, () => {
    vi.stubEnv("PPSIM_DATA_MAP", way);
    const holes = new Set([0, 5, 6, 7, 300, 511, 512, 1023]);
    const { g } = guest(holes);
    const port = new SourceMemoryPort(g, false, true);
    port.collectDirty(); // the pause
    // Demand replies first (scattered), then the push (a run), then the rest scattered again.
    const order = [...scattered().slice(0, 40), ...Array.from({ length: 600 }, (_, i) => i + 200), ...scattered()];
    for (const p of order) expect(port.readPage(p), `page ${p}`).toBe(holes.has(p) ? null : DEFERRED);
    expect(calls.every((c) => c.bounded && c.count <= 256)).toBe(true);
    // Off-run pages alone (no window walked for a demand reply).
    expect(calls.slice(0, 40).every((c) => c.count === 1)).toBe(true);
    const asked = new Set<number>();
    for (const c of calls) for (let p = c.first; p < c.first + c.count; p++) {
      expect(asked.has(p), `page ${p} looked up twice`).toBe(false);
      asked.add(p);
    }
    port.close();
  });

  it("keeps the map through pre-copy rounds: a hole the guest wrote is data once the dirty log says so", () => {
    const { g, fd } = guest(new Set([10, 11]));
    const port = new SourceMemoryPort(g, true, true);
    port.collectDirty(); // tracking starts before any page is read
    expect(port.readPage(10)).toBeNull();
    expect(port.readPage(20)).toBe(DEFERRED);
    pwrite(fd, 10 * PS, Buffer.alloc(PS, 9)); // the guest writes page 10: the next dirty log has it
    written = [10];
    expect(Array.from(port.collectDirty())).toEqual([10]);
    expect(port.readPage(10)).toBe(DEFERRED);
    expect(port.readPage(11)).toBeNull();
    for (let round = 0; round < 5; round++) {
      written = scattered().slice(round * 50, round * 50 + 50).filter((p) => p !== 11);
      for (const p of written) pwrite(fd, p * PS, Buffer.alloc(PS, 3));
      for (const p of port.collectDirty()) expect(port.readPage(p)).toBe(DEFERRED);
    }
    expect(calls.length).toBe(1);
    port.close();
  });

  for (const way of ["mincore", "seek"] as const)
  it(`untracked (post-copy, ${way}), walks after the pause's collect, not before`, () => {
    vi.stubEnv("PPSIM_DATA_MAP", way);
    const { g, fd } = guest(new Set([10]));
    const port = new SourceMemoryPort(g, false, true);
    expect(port.readPage(10)).toBeNull();
    pwrite(fd, 10 * PS, Buffer.alloc(PS, 9)); // written before the pause, untracked
    port.collectDirty();
    expect(port.readPage(10)).toBe(DEFERRED);
    expect(calls.length).toBe(2);
    port.close();
  });

  it("a bounded lookup says what the walk says, for any holes and window", () => {
    const { memfdDataPages } = realNative;
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 255 }), { maxLength: 200 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 256 }), (holeList, first, n) => {
        const fd = memfdCreate("port-bounded", 256 * PS);
        try {
          const holes = new Set(holeList);
          for (let p = 0; p < 256; p++) if (!holes.has(p)) pwrite(fd, p * PS, Buffer.alloc(PS, 1));
          const count = Math.min(n, 256 - first);
          const want = Uint8Array.from({ length: count }, (_, i) => (holes.has(first + i) ? 0 : 1));
          expect(memfdDataPages(fd, first, count, PS, true)).toEqual(want);
          expect(memfdDataPages(fd, first, count, PS, false)).toEqual(want);
        } finally {
          closeFd(fd);
        }
      }),
      { seed: 16, numRuns: 60 },
    );
  });
});

describe("SourceMemoryPort reading bytes (huge pages, TLS, PPSIM_DATAPLANE=js)", () => {
  /** A guest of `pages` pages of `ps` bytes, page p filled with p + 1; the port reads the bytes itself. */
  function bytesPort(ps: number, pages: number): InstanceType<typeof SourceMemoryPort> {
    const fd = memfdCreate("port-bytes", pages * ps);
    cleanups.push(() => closeFd(fd));
    for (let p = 0; p < pages; p++) pwrite(fd, p * ps, Buffer.alloc(ps, p + 1));
    const g = { memfd: fd, layout: { pageSize: ps, memBytes: pages * ps, base: 0n }, openPagemap: () => openSync("/dev/null", "r") } as unknown as GuestProcess;
    const port = new SourceMemoryPort(g, false, false);
    cleanups.push(() => port.close());
    return port;
  }

  it("reads a run 16 base pages per pread, and a 2 MiB page alone (no 32 MiB pread every 16th page)", () => {
    const small = bytesPort(PS, 32);
    for (let p = 0; p < 32; p++) expect(small.readPage(p)?.[0]).toBe(p + 1);
    // The first page is read alone (no run yet), then the run a chunk at a time.
    expect(preads).toEqual([PS, 16 * PS, 15 * PS]);
    preads.length = 0;
    const HUGE = 2 << 20;
    const huge = bytesPort(HUGE, 4);
    for (let p = 0; p < 4; p++) {
      const d = huge.readPage(p);
      expect([d?.length, d?.[0], d?.[HUGE - 1]]).toEqual([HUGE, p + 1, p + 1]);
    }
    expect(preads).toEqual([HUGE, HUGE, HUGE, HUGE]);
  });
});
