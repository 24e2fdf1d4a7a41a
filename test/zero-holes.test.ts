/**
 * Zero pages left holes at the destination (native/src/zero_holes.h): the bulk
 * receiver marks them instead of installing them, the fault reader answers a
 * fault on one with a zero page, and the race between the two — a fault sent
 * on as a demand fault just before the mark — ends with the page installed.
 * In one process: a memfd mapped and registered MISSING here, the pool thread
 * of `touchAsync` standing in for a vCPU.
 */
import { afterEach, describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import {
  closeFd,
  constants,
  createPageTable,
  createZeroHoleTable,
  memfdCreate,
  memfdDataPages,
  pread,
  punchHole,
  pwrite,
  startFaultReader,
  uffdUnregister,
  type FaultEvent,
  type FaultReaderHandle,
  type Mapping,
  type ZeroHoleTableHandle,
} from "../src/real/native.js";
import { bulkPair } from "./support/bulk-pair.js";
import { missingMemory, userfaultfdUnavailable } from "./support/uffd.js";

const C = constants();
const PS = C.PAGE_SIZE;
const PAGES = 64;
const unavailable = userfaultfdUnavailable();

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

function pattern(p: number): Buffer {
  const b = Buffer.alloc(PS, (p * 5 + 3) & 0xff);
  b.writeUInt32LE(p + 1, 0);
  return b;
}

/** Source memory: page p holds data when `data(p)`, else it is a hole. */
function source(data: (p: number) => boolean): number {
  const fd = memfdCreate("zh-src", PAGES * PS);
  cleanups.push(() => closeFd(fd));
  for (let p = 0; p < PAGES; p++) if (data(p)) pwrite(fd, p * PS, pattern(p));
  return fd;
}

interface Dest {
  fd: number;
  uffd: number;
  map: Mapping;
  holes: ZeroHoleTableHandle;
  forwarded: number[];
  reader: FaultReaderHandle;
}

/** The destination's memory registered MISSING in this process, a zero-hole table, a fault reader answering its holes. */
function destination(): Dest {
  const { fd, map, uffd } = missingMemory(cleanups, "zh-dst", PAGES * PS);
  const holes = createZeroHoleTable(PAGES);
  const forwarded: number[] = [];
  const reader = startFaultReader(uffd, (events: FaultEvent[]) => {
    for (const e of events) if (e.event === C.UFFD_EVENT_PAGEFAULT) forwarded.push(Number((e.address - map.address) / BigInt(PS)));
  });
  cleanups.push(() => reader.stop());
  reader.setHoles(holes, map.address, PS);
  return { fd, uffd, map, holes, forwarded, reader };
}

/** Frames of consecutive pages, the zero flag from the source's holes. */
function frames(src: number, pages: number[], per = 16): { pages: Uint32Array; zero: Uint8Array }[] {
  const map = memfdDataPages(src, 0, PAGES, PS);
  const out = [];
  for (let i = 0; i < pages.length; i += per) {
    const ps = Uint32Array.from(pages.slice(i, i + per));
    out.push({ pages: ps, zero: Uint8Array.from(ps, (p) => (map[p] === 1 ? 0 : 1)) });
  }
  return out;
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

describe.skipIf(unavailable !== null)("zero pages left holes (destination)", () => {
  it("the receiver leaves zero pages holes before and after the guest may run, punching only a resend over data", async () => {
    const src = source((p) => p % 3 !== 1);
    const d = destination();
    const { sender, receiver, notices } = bulkPair(cleanups, src, PS, PAGES);
    receiver.setTarget(d.fd, d.uffd, d.map.address, PS, PAGES, null, d.holes);
    receiver.start(new Uint8Array(0));
    // Page 1 holds data at first and is resent as a zero page before the guest runs: it must end a hole.
    pwrite(src, 1 * PS, pattern(1));
    for (const f of frames(src, [0, 1, 2, 3])) sender.pages(f.pages, f.zero);
    await until(() => receiver.stats().pages === 4, "the first frame");
    expect(pread(d.fd, 1 * PS, PS).equals(pattern(1))).toBe(true);
    expect(d.holes.flags(1)).toBe(4); // written: a zero resend must punch it
    d.holes.wrote(4); // as JS does when it writes a page itself before the guest runs (4 then comes as a zero page)
    pwrite(d.fd, 4 * PS, pattern(4));
    punchHole(src, 1 * PS, PS);
    const before = Array.from({ length: 32 }, (_, p) => p);
    for (const f of frames(src, before)) sender.pages(f.pages, f.zero);
    sender.frame(encodeMessage({ type: "cancel", reason: "the switchover, standing in" }, PS));
    const after = Array.from({ length: 32 }, (_, p) => 32 + p);
    for (const f of frames(src, after)) sender.pages(f.pages, f.zero);
    await until(() => receiver.stats().pages === 4 + PAGES, "every frame");
    expect(notices.some((n) => n.kind === "frame")).toBe(true);
    expect(d.holes.flags(1) & 4).toBe(0); // punched: no data any more
    const held = memfdDataPages(d.fd, 0, PAGES, PS);
    for (let p = 0; p < PAGES; p++) {
      const zeroPage = p % 3 === 1;
      expect(held[p], `page ${p} allocated`).toBe(zeroPage ? 0 : 1);
      expect(d.holes.flags(p) & 1, `page ${p} marked`).toBe(zeroPage ? 1 : 0);
      if (!zeroPage) expect(pread(d.fd, p * PS, PS).equals(pattern(p)), `page ${p}`).toBe(true);
    }
    expect(d.holes.holes).toBe(Array.from({ length: PAGES }, (_, p) => p).filter((p) => p % 3 === 1).length);
    // A touch of a zero hole is answered by the reader, as zeros, and goes nowhere else.
    expect(await d.map.touchAsync(4 * PS + 8)).toBe(0n);
    expect(await d.map.touchAsync(1 * PS)).toBe(0n);
    expect(d.forwarded).toEqual([]);
    expect(d.reader.zeroFaults()).toBe(2);
    // A data page is mapped as sent.
    expect(await d.map.touchAsync(5 * PS)).toBe(pattern(5).readBigUInt64LE(0));
  });

  it("a fault sent on before the page came as a zero page is answered by the receiver's install", async () => {
    const src = source(() => false);
    const d = destination();
    const { sender, receiver } = bulkPair(cleanups, src, PS, PAGES);
    receiver.setTarget(d.fd, d.uffd, d.map.address, PS, PAGES, null, d.holes);
    receiver.setRunning();
    receiver.start(new Uint8Array(0));
    // The vCPU faults on page 7 first: the reader sends the fault on (nothing marked yet).
    const touch = d.map.touchAsync(7 * PS);
    await until(() => d.forwarded.includes(7), "the fault sent on");
    expect(d.holes.flags(7)).toBe(2);
    // Then page 7 comes as a zero page in the background: marked, and installed since it was asked.
    for (const f of frames(src, [6, 7, 8])) sender.pages(f.pages, f.zero);
    expect(await touch).toBe(0n);
    await until(() => receiver.stats().pages === 3, "the frame");
    expect(d.holes.flags(7)).toBe(3);
    expect(memfdDataPages(d.fd, 0, PAGES, PS)[7]).toBe(1);
    // Its neighbours, never asked, stay holes.
    expect(memfdDataPages(d.fd, 0, PAGES, PS)[6]).toBe(0);
    expect(memfdDataPages(d.fd, 0, PAGES, PS)[8]).toBe(0);
  });

  it("a cleared page is no zero hole: its fault goes on; after unregistering, holes read as zeros with no fault", async () => {
    const src = source(() => false);
    const d = destination();
    const { sender, receiver } = bulkPair(cleanups, src, PS, PAGES);
    receiver.setTarget(d.fd, d.uffd, d.map.address, PS, PAGES, null, d.holes);
    receiver.start(new Uint8Array(0));
    for (const f of frames(src, [10, 11, 12])) sender.pages(f.pages, f.zero);
    await until(() => receiver.stats().pages === 3, "the frame");
    expect(d.holes.holes).toBe(3);
    d.holes.clear(Uint32Array.of(11)); // a stale page, punched to be fetched again
    expect(d.holes.holes).toBe(2);
    const touch = d.map.touchAsync(11 * PS);
    await until(() => d.forwarded.includes(11), "the fault on the cleared page");
    // What completion does: the guest's memory leaves the uffd, waiting faults are woken and fill normally.
    uffdUnregister(d.uffd, d.map.address, PAGES * PS);
    expect(await touch).toBe(0n);
    expect(await d.map.touchAsync(40 * PS)).toBe(0n);
    expect(d.forwarded).toEqual([11]);
  });

  it("a target takes a page table or a zero-hole table of its own size, never both", () => {
    const d = destination();
    const src = source(() => true);
    const { receiver } = bulkPair(cleanups, src, PS, PAGES);
    const table = createPageTable(d.fd, d.uffd, d.map.address, PS, PAGES);
    cleanups.push(() => table.close());
    expect(() => receiver.setTarget(d.fd, d.uffd, d.map.address, PS, PAGES, table, d.holes)).toThrow(/not both/);
    expect(() => receiver.setTarget(d.fd, d.uffd, d.map.address, PS, PAGES, null, createZeroHoleTable(PAGES - 1))).toThrow(/page count is not the target's/);
    expect(() => receiver.setTarget(d.fd, d.uffd, d.map.address, PS, PAGES, null, {} as ZeroHoleTableHandle)).toThrow(/must be a ZeroHoleTable/);
    expect(() => createZeroHoleTable(0)).toThrow(/pageCount must be 1/);
    expect(() => d.holes.clear(Uint32Array.of(PAGES))).toThrow(/beyond the table/);
  });
});
