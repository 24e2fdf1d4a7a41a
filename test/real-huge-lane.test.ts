/**
 * The fault lane on hugetlbfs (issue 9, docs/huge-pages.md), both native ends
 * in-process: a fault anywhere in a 2 MiB page is requested as that page,
 * answered from the source's hugetlbfs memfd and installed whole by one
 * UFFDIO_COPY — a zero page too (hugetlbfs has no UFFDIO_ZEROPAGE). Then a
 * hostile peer: a reply of the wrong size, one beyond the layout, one
 * carrying two huge pages — each ends the lane with a protocol error, never
 * a crash, and the pool is as it was. Nothing here depends on timing.
 * Skips, saying why, without userfaultfd or a 2 MiB pool we may use.
 */
import { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { reserveHugePages } from "../src/real/huge-reserve.js";
import {
  closeFd,
  constants,
  createFaultLane,
  createLaneServer,
  mapShared,
  memfdCreate,
  socketPair,
  startFaultReader,
  uffdApi,
  uffdCreate,
  uffdRegister,
  type LaneNotice,
  type LaneServerNotice,
} from "../src/real/native.js";
import { HUGE, holdPoolForFile, hugeUnavailable, nr, pattern, unalignedSrc } from "./support/huge-test.js";

const PAGES = 3;
const unavailable = hugeUnavailable(PAGES);
if (unavailable !== null) console.log(`skipping the huge-page fault lane: ${unavailable}`);

const C = constants();
const cleanups: (() => void)[] = [];
holdPoolForFile(cleanups);

function frame(tag: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0x5050, 0);
  h.writeUInt8(tag, 2);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** A pages frame (tag 3) of these pages, each with its bytes. */
function reply(pages: number[], data: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  const n = Buffer.alloc(4);
  n.writeUInt32LE(pages.length, 0);
  parts.push(n);
  pages.forEach((p, i) => {
    const e = Buffer.alloc(5);
    e.writeUInt32LE(p, 0);
    parts.push(e, data[i]);
  });
  return frame(3, Buffer.concat(parts));
}

async function until<T>(what: () => T | undefined): Promise<T> {
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The destination: a hugetlbfs memfd mapped here, registered MISSING, its fault reader handing faults to an armed lane on `fd`. */
function destination(fd: number) {
  const mem = memfdCreate("huge-lane-dest", PAGES * HUGE, HUGE);
  const map = mapShared(mem, PAGES * HUGE);
  const uffd = uffdCreate();
  uffdApi(uffd, C.UFFD_FEATURE_THREAD_ID | C.UFFD_FEATURE_MISSING_HUGETLBFS);
  uffdRegister(uffd, map.address, PAGES * HUGE, C.UFFDIO_REGISTER_MODE_MISSING);
  const notices: LaneNotice[] = [];
  const other: number[] = [];
  const lane = createFaultLane(fd, 5000, (n) => notices.push(...n));
  lane.setTarget(mem, uffd, map.address, HUGE, PAGES);
  const reader = startFaultReader(uffd, (events) => {
    for (const e of events) other.push(Number((e.address - map.address) / BigInt(HUGE)));
  });
  reader.setLane(lane);
  lane.start(new Uint8Array(0));
  lane.arm();
  cleanups.push(() => {
    reader.setLane(null);
    lane.stop();
    reader.stop();
    map.unmap();
    closeFd(uffd);
    closeFd(mem);
  });
  return { map, lane, notices, other };
}

describe.skipIf(unavailable !== null)("the fault lane on 2 MiB hugetlbfs pages", () => {
  it("a fault mid-page is asked as its huge page, served from the memfd and installed whole; a zero page by COPY", async () => {
    const before = nr();
    const pool = reserveHugePages(HUGE, 2 * PAGES);
    cleanups.push(() => pool.release());
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(b));
    cleanups.push(() => closeFd(a));
    // The source's memory: hugetlbfs has no write(2), so its pages are written through a mapping; page 2 stays a hole.
    const src = memfdCreate("huge-lane-src", PAGES * HUGE, HUGE);
    cleanups.push(() => closeFd(src));
    const smap = mapShared(src, PAGES * HUGE);
    cleanups.push(() => smap.unmap());
    smap.write(0, pattern(0));
    smap.write(HUGE, pattern(1));
    const served: LaneServerNotice[] = [];
    const server = createLaneServer(b, src, HUGE, PAGES, 5000, (n) => served.push(...n));
    cleanups.push(() => server.stop());
    server.start(new Uint8Array(0));
    server.arm();
    const d = destination(a);
    const within = 1_000_000; // inside page 1, far from its start (8-aligned)
    expect(await d.map.touchAsync(HUGE + within)).toBe(pattern(1).readBigUInt64LE(within));
    expect(await d.map.touchAsync(2 * HUGE + 4096)).toBe(0n);
    expect(Buffer.compare(d.map.read(HUGE, HUGE), pattern(1))).toBe(0);
    expect(d.map.read(2 * HUGE, HUGE).equals(Buffer.alloc(HUGE))).toBe(true);
    const s = await until(() => {
      const pages = served.flatMap((n) => (n.kind === "served" ? Array.from(n.pages) : []));
      return pages.length >= 2 ? served : undefined;
    });
    const zero = s.flatMap((n) => (n.kind === "served" ? Array.from(n.zero) : []));
    expect(zero).toEqual([0, 1]);
    const inst = await until(() => (d.notices.filter((n) => n.kind === "installed").length >= 2 ? d.notices : undefined));
    expect(inst.filter((n) => n.kind === "installed").map((n) => Array.from(n.pages))).toEqual([[1], [2]]);
    expect(inst.some((n) => n.kind === "end")).toBe(false);
    expect(d.other).toEqual([]);
    expect(server.stats()).toMatchObject({ requests: 2, served: 2, bytes: 8 + 9 + HUGE + 8 + 9 });
    expect(d.lane.stats()).toMatchObject({ requests: 2, replies: 2, installs: 2 });
    // Both went in by one UFFDIO_COPY each, straight from the reply's bytes where the kernel takes src unaligned (6.6 on).
    const { hugeDirect, hugeStaged } = d.lane.stats();
    expect(hugeDirect + hugeStaged).toBe(2);
    if (unalignedSrc) expect(hugeDirect).toBe(2);
    while (cleanups.length > 0) cleanups.pop()?.();
    expect(nr()).toBe(before);
  });

  it.each([
    ["a reply of a base page's size", reply([1], [pattern(1, 4096)]), /does not parse within the layout/],
    ["a reply one byte short of its huge page", reply([1], [pattern(1, HUGE - 1)]), /does not parse within the layout/],
    ["a reply beyond the layout", reply([PAGES], [pattern(0)]), /does not parse within the layout/],
    ["a reply of two huge pages (one is the bound)", reply([0, 1], [pattern(0), pattern(1)]), /not a page reply \(tag 3, 4194318 bytes\)/],
  ])("the destination's lane ends on %s with a protocol error, nothing installed", async (_what, bytes, why) => {
    const before = nr();
    const pool = reserveHugePages(HUGE, PAGES);
    cleanups.push(() => pool.release());
    const [a, b] = socketPair();
    const peer = new Socket({ fd: b, readable: true, writable: true });
    peer.on("data", () => undefined); // the lane's attached frame
    cleanups.push(() => {
      peer.destroy();
      closeFd(a);
    });
    const d = destination(a);
    peer.write(bytes);
    const end = await until(() => d.notices.find((n) => n.kind === "end"));
    expect(end).toMatchObject({ kind: "end", protocol: true });
    expect(end.kind === "end" && end.reason).toMatch(why);
    expect(d.lane.stats()).toMatchObject({ installs: 0 });
    while (cleanups.length > 0) cleanups.pop()?.();
    expect(nr()).toBe(before);
  });
});
