/**
 * The fault lane's native ends (native/src/fault_lane.cc, lane_server.cc)
 * in-process: a missing-page fault of a pool thread is requested by the
 * fault reader thread, answered by the source's lane thread from its memfd
 * and installed by the destination's — no JS on the way. Then the races
 * forced one by one: a request for a released page (not answered; the page
 * comes by another path), a page installed by another path while its request
 * is in flight (the duplicate reply is dropped), and hostile frames at both
 * ends (each ends the lane with an error notice, never a crash). Nothing here
 * depends on timing.
 */
import { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  closeFd,
  constants,
  createFaultLane,
  createLaneServer,
  mapShared,
  memfdCreate,
  pwrite,
  socketPair,
  startFaultReader,
  uffdApi,
  uffdCopy,
  uffdCreate,
  uffdRegister,
  type FaultLaneHandle,
  type LaneNotice,
  type LaneServerNotice,
  type Mapping,
} from "../src/real/native.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
const C = constants();
const PS = C.PAGE_SIZE;
const PAGES = 8;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

function pattern(seed: number): Buffer {
  const b = Buffer.alloc(PS);
  for (let i = 0; i < PS; i += 4) b.writeUInt32LE((seed * 2654435761 + i) >>> 0, i);
  return b;
}

/** The destination: a memfd mapped here, registered MISSING, with a fault reader and a lane on one end of a socket pair. */
function destination(peerFd: number): { map: Mapping; uffd: number; lane: FaultLaneHandle; notices: LaneNotice[]; other: number[] } {
  const fd = memfdCreate("lane-dest", PAGES * PS);
  const map = mapShared(fd, PAGES * PS);
  const uffd = uffdCreate();
  uffdApi(uffd, C.UFFD_FEATURE_THREAD_ID | C.UFFD_FEATURE_MISSING_SHMEM);
  uffdRegister(uffd, map.address, PAGES * PS, C.UFFDIO_REGISTER_MODE_MISSING);
  const notices: LaneNotice[] = [];
  const other: number[] = [];
  const lane = createFaultLane(peerFd, 5000, (n) => notices.push(...n));
  lane.setTarget(fd, uffd, map.address, PS, PAGES);
  // Faults the lane does not take come here (none while it is armed).
  const reader = startFaultReader(uffd, (events) => {
    for (const e of events) other.push(Number((e.address - map.address) / BigInt(PS)));
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
    closeFd(fd);
  });
  return { map, uffd, lane, notices, other };
}

/** A socket pair: [the lane's end, a raw Node socket on the other end] (tests play the peer). */
function pair(): [number, Socket] {
  const [a, b] = socketPair();
  const s = new Socket({ fd: b, readable: true, writable: true });
  cleanups.push(() => {
    s.destroy();
    closeFd(a);
  });
  return [a, s];
}

function frame(tag: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0x5050, 0);
  h.writeUInt8(tag, 2);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

function reply(page: number, data: Buffer): Buffer {
  const p = Buffer.alloc(9);
  p.writeUInt32LE(1, 0);
  p.writeUInt32LE(page, 4);
  return frame(3, Buffer.concat([p, data]));
}

function request(page: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32LE(page, 0);
  return frame(4, p);
}

/** Resolves with the pages of the first `n` requests the peer socket reads. */
function requests(s: Socket, n: number): Promise<number[]> {
  return new Promise((resolve) => {
    let buf = Buffer.alloc(0);
    const got: number[] = [];
    const on = (b: Buffer): void => {
      buf = Buffer.concat([buf, b]);
      while (buf.length >= 12 && got.length < n) {
        if (buf.readUInt8(2) === 2) {
          buf = buf.subarray(16); // the lane's first frame: attached, a helloAck (fault_lane.h)
          continue;
        }
        expect(buf.readUInt8(2)).toBe(4); // pageRequest
        got.push(buf.readUInt32LE(8));
        buf = buf.subarray(12);
      }
      if (got.length === n) {
        s.off("data", on);
        resolve(got);
      }
    };
    s.on("data", on);
  });
}

/** Waits as long as it takes (never a timing threshold: a hang is the test's timeout) until `what` gives a value. */
async function until<T>(what: () => T | undefined): Promise<T> {
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.skipIf(unavailable !== null)("the fault lane, both native ends", () => {
  it("a fault is requested by the reader thread, served from the source's memfd and installed by the lane thread", async () => {
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(b));
    cleanups.push(() => closeFd(a));
    const src = memfdCreate("lane-src", PAGES * PS);
    cleanups.push(() => closeFd(src));
    for (let p = 0; p < PAGES; p++) if (p !== 6) pwrite(src, p * PS, pattern(p)); // page 6 stays a hole: a zero page
    const served: LaneServerNotice[] = [];
    const server = createLaneServer(b, src, PS, PAGES, 5000, (n) => served.push(...n));
    cleanups.push(() => server.stop());
    server.start(new Uint8Array(0));
    server.arm();
    const d = destination(a);
    expect(await d.map.touchAsync(3 * PS + 8)).toBe(pattern(3).readBigUInt64LE(8));
    expect(await d.map.touchAsync(6 * PS)).toBe(0n);
    const faults = await until(() => (d.notices.filter((n) => n.kind === "installed").length >= 2 ? d.notices : undefined));
    // JS hears each fault (asked on the lane) before the install that answered it.
    const order = faults.filter((n) => n.kind !== "end").map((n) => `${n.kind}:${Array.from(n.pages).join(",")}`);
    expect(order.indexOf("faults:3")).toBeLessThan(order.indexOf("installed:3"));
    expect(order.indexOf("faults:6")).toBeLessThan(order.indexOf("installed:6"));
    const f3 = faults.find((n) => n.kind === "faults" && n.pages[0] === 3);
    expect(f3?.kind === "faults" && f3.requested[0]).toBe(1);
    const i6 = faults.find((n) => n.kind === "installed" && n.pages[0] === 6);
    expect(i6?.kind === "installed" && i6.zero[0]).toBe(1);
    const s = await until(() => {
      const pages = served.flatMap((n) => (n.kind === "served" ? Array.from(n.pages) : []));
      return pages.length >= 2 ? pages : undefined;
    });
    expect(s).toEqual([3, 6]);
    expect(d.other).toEqual([]);
    expect(server.stats()).toMatchObject({ requests: 2, served: 2, released: 0 });
    expect(d.lane.stats()).toMatchObject({ requests: 2, replies: 2, installs: 2 });
  });

  it("a request for a released page is not answered (never the hole's zeros); the page still comes by another path", async () => {
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(b));
    cleanups.push(() => closeFd(a));
    const src = memfdCreate("lane-src", PAGES * PS);
    cleanups.push(() => closeFd(src));
    const served: LaneServerNotice[] = [];
    const server = createLaneServer(b, src, PS, PAGES, 5000, (n) => served.push(...n));
    cleanups.push(() => server.stop());
    server.start(new Uint8Array(0));
    server.arm();
    // Page 4 reached the destination by bulk and was punched here: the source's copy is a hole now.
    server.release(Uint32Array.of(4));
    const d = destination(a);
    const touched = d.map.touchAsync(4 * PS + 16);
    // The attached notice is posted before the request is read, but it reaches JS on a turn of its own, which may
    // come after the touch's completion below: wait for it too, so the last check sees every notice the server sent.
    await until(() => (server.stats().released === 1 && served.length > 0 ? true : undefined));
    expect(server.stats()).toMatchObject({ requests: 1, served: 0 });
    // The bulk copy's install (what the destination holds) wakes the vCPU.
    uffdCopy(d.uffd, d.map.address + BigInt(4 * PS), pattern(4));
    expect(await touched).toBe(pattern(4).readBigUInt64LE(16));
    expect(served).toEqual([{ kind: "attached" }]); // the destination's first frame; nothing served
  });

  it("a reply for a page another path installed meanwhile is dropped, and the lane goes on", async () => {
    const [a, peer] = pair();
    const d = destination(a);
    const asked = requests(peer, 1);
    const touched = d.map.touchAsync(2 * PS);
    expect(await asked).toEqual([2]);
    // The bulk receiver wins the race: the page is there, the vCPU woken …
    uffdCopy(d.uffd, d.map.address + BigInt(2 * PS), pattern(2));
    expect(await touched).toBe(pattern(2).readBigUInt64LE(0));
    // … then the lane's reply (other bytes) arrives: EEXIST, dropped, not an error.
    peer.write(reply(2, pattern(99)));
    await until(() => (d.lane.stats().replies === 1 ? true : undefined));
    expect(d.map.read(2 * PS, 8).readBigUInt64LE(0)).toBe(pattern(2).readBigUInt64LE(0));
    // The lane still serves the next fault.
    const next = requests(peer, 1);
    const t5 = d.map.touchAsync(5 * PS);
    expect(await next).toEqual([5]);
    peer.write(reply(5, pattern(5)));
    expect(await t5).toBe(pattern(5).readBigUInt64LE(0));
    expect(d.notices.some((n) => n.kind === "end")).toBe(false);
  });

  it.each([
    ["a frame that is not a reply", frame(9, Buffer.from("x")), /not a page reply \(tag 9/],
    ["an oversized frame", Buffer.from([0x50, 0x50, 3, 0, 0xff, 0xff, 0xff, 0x7f]), /not a page reply \(tag 3, 2147483647 bytes\)/],
    ["a reply beyond the layout", reply(PAGES, pattern(0)), /does not parse within the layout/],
  ])("the destination's lane ends on %s with a protocol error", async (_what, bytes, why) => {
    const [a, peer] = pair();
    const d = destination(a);
    peer.write(bytes);
    const end = await until(() => d.notices.find((n) => n.kind === "end"));
    expect(end).toMatchObject({ kind: "end", protocol: true });
    expect(end.kind === "end" && end.reason).toMatch(why);
  });

  it("a reply before the guest may run ends the lane: nothing was requested", async () => {
    const [a, peer] = pair();
    const notices: LaneNotice[] = [];
    const fd = memfdCreate("lane-unarmed", PAGES * PS);
    cleanups.push(() => closeFd(fd));
    const lane = createFaultLane(a, 5000, (n) => notices.push(...n));
    cleanups.push(() => void lane.stop());
    lane.start(new Uint8Array(0));
    peer.write(reply(1, pattern(1)));
    const end = await until(() => notices.find((n) => n.kind === "end"));
    expect(end.kind === "end" && end.reason).toMatch(/before the guest may run/);
  });

  it.each([
    ["a request before the switchover", false, request(1), /before the switchover/],
    ["a request beyond the layout", true, request(PAGES + 3), /page 11 of 8/],
    ["a frame that is not a request", true, frame(3, Buffer.alloc(4)), /not a page request \(tag 3/],
    ["a request of the wrong length", true, frame(4, Buffer.alloc(1 << 20)), /not a page request \(tag 4, 1048576 bytes\)/],
  ])("the source's lane ends on %s with a protocol error", async (_what, armed, bytes, why) => {
    const [b, peer] = pair();
    const src = memfdCreate("lane-src", PAGES * PS);
    cleanups.push(() => closeFd(src));
    const notices: LaneServerNotice[] = [];
    const server = createLaneServer(b, src, PS, PAGES, 5000, (n) => notices.push(...n));
    cleanups.push(() => server.stop());
    server.start(new Uint8Array(0));
    if (armed) server.arm();
    peer.write(bytes);
    const end = await until(() => notices.find((n) => n.kind === "end"));
    expect(end).toMatchObject({ kind: "end", protocol: true });
    expect(end.kind === "end" && end.reason).toMatch(why);
  });
});
