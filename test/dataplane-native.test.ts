/**
 * The native data plane's two threads in-process (native/src/bulk_*.cc):
 * what the sender writes is the engine's codec, byte for byte; what the
 * receiver installs equals the source memory, before the guest runs (pwrite)
 * and after (UFFDIO_COPY / ZEROPAGE, EEXIST for pages already there), and it
 * stops at a non-pages frame until JS releases it. A socketpair stands in for
 * TCP. Nothing here depends on timing.
 */
import { closeSync, openSync } from "node:fs";
import { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import { FrameDecoder } from "../src/engine/frame-decoder.js";
import type { Message } from "../src/engine/messages.js";
import {
  closeFd,
  constants,
  createBulkReceiver,
  mapShared,
  memfdCreate,
  memfdDataPages,
  pread,
  punchHole,
  pwrite,
  residentPages,
  socketPair,
  startBulkSender,
  type BulkNotice,
} from "../src/real/native.js";
import { startPuncher } from "../src/real/native-puncher.js";
import { ReleaseLog } from "../src/real/source-release.js";
import { bulkPair, receiverLimits } from "./support/bulk-pair.js";
import { missingMemory, userfaultfdUnavailable } from "./support/uffd.js";
import { pagesMsg } from "./support/pages.js";

const C = constants();
const PS = C.PAGE_SIZE;
const PAGES = 96;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

/** A memfd whose pages are data (a pattern from the page number) except every page p with p % 3 === 1: a hole. */
function sourceMemory(): number {
  const fd = memfdCreate("dp-src", PAGES * PS);
  cleanups.push(() => closeFd(fd));
  for (let p = 0; p < PAGES; p++) {
    if (p % 3 === 1) continue;
    const b = Buffer.alloc(PS, (p * 7 + 1) & 0xff);
    b.writeUInt32LE(p, 0);
    pwrite(fd, p * PS, b);
  }
  return fd;
}

/** Pages frames as the engine's batches would be: runs of consecutive pages, zero flag for holes. */
function batches(fd: number, order: number[], per = 16): { pages: Uint32Array; zero: Uint8Array }[] {
  const map = memfdDataPages(fd, 0, PAGES, PS);
  const out = [];
  for (let i = 0; i < order.length; i += per) {
    const pages = Uint32Array.from(order.slice(i, i + per));
    out.push({ pages, zero: Uint8Array.from(pages, (p) => (map[p] === 1 ? 0 : 1)) });
  }
  return out;
}

const limits = (): Uint32Array => receiverLimits(PS, PAGES);

const unavailable = userfaultfdUnavailable();

describe("native data plane", () => {
  it("memfdDataPages tells holes from pages with data", () => {
    const fd = sourceMemory();
    const map = memfdDataPages(fd, 0, PAGES, PS);
    expect(Array.from(map)).toEqual(Array.from({ length: PAGES }, (_, p) => (p % 3 === 1 ? 0 : 1)));
    expect(Array.from(memfdDataPages(fd, 4, 3, PS))).toEqual([0, 1, 1]);
  });

  it("residentPages (mincore on a mapping) agrees with memfdDataPages, before and after a punch, and faults nothing in", () => {
    const fd = sourceMemory();
    const map = mapShared(fd, PAGES * PS);
    cleanups.push(() => map.unmap());
    expect(Array.from(residentPages(map.address, PAGES, PS))).toEqual(Array.from(memfdDataPages(fd, 0, PAGES, PS)));
    expect(Array.from(residentPages(map.address + BigInt(4 * PS), 3, PS))).toEqual([0, 1, 1]);
    punchHole(fd, 3 * PS, 3 * PS);
    expect(Array.from(residentPages(map.address, 9, PS))).toEqual([1, 0, 1, 0, 0, 0, 1, 0, 1]);
    expect(Array.from(residentPages(map.address, 9, PS))).toEqual(Array.from(memfdDataPages(fd, 0, 9, PS)));
    expect(residentPages(map.address, 0, PS).length).toBe(0);
    expect(() => residentPages(map.address + 1n, 1, PS)).toThrow(/page-aligned/);
  });

  it("the sender writes the engine's codec: JS frames as given, pages frames filled from the memfd", async () => {
    const fd = sourceMemory();
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(a));
    const events: string[] = [];
    const sender = startBulkSender(a, fd, PS, PAGES, 64 * 1024, (e) => events.push(e.kind));
    cleanups.push(() => sender.stop());
    const reader = new Socket({ fd: b, readable: true, writable: false });
    const decoder = new FrameDecoder(PS);
    decoder.setLayout(PS, PAGES);
    const got: Message<Uint8Array>[] = [];
    reader.on("data", (d: Buffer) => got.push(...decoder.push(d)));
    const order = [0, 1, 2, 3, 50, 51, 17, 90, 91, 92, 93, 94, 95, 5, 4];
    const sent = batches(fd, order, 6);
    const hello: Message<Uint8Array> = { type: "cancel", reason: "first a frame from JS" };
    let bytes = sender.frame(encodeMessage(hello, PS));
    for (const s of sent) bytes += sender.pages(s.pages, s.zero);
    await new Promise<void>((resolve) => {
      const check = (): void => (decoder.buffered === 0 && got.length === 1 + sent.length ? resolve() : void setTimeout(check, 5));
      check();
    });
    expect(sender.written).toBe(bytes);
    expect(got[0]).toEqual(hello);
    let expected = encodeMessage(hello, PS).length;
    for (let i = 0; i < sent.length; i++) {
      const want: Message<Uint8Array> = pagesMsg(Array.from(sent[i].pages, (p, k) => ({ page: p, data: sent[i].zero[k] === 1 ? null : new Uint8Array(pread(fd, p * PS, PS)) })));
      expect(got[1 + i]).toEqual(want);
      expected += encodeMessage(want, PS).length;
    }
    expect(bytes).toBe(expected);
    expect(() => sender.pages(Uint32Array.of(PAGES), Uint8Array.of(0))).toThrow(/beyond the guest's/);
    sender.stop();
    reader.destroy();
    expect(events).not.toContain("error");
  });

  it.skipIf(unavailable !== null)("the receiver installs before and after the guest may run, stops at other frames until released, and reports pages in order", async () => {
    const src = sourceMemory();
    const { fd: dst, map, uffd } = missingMemory(cleanups, "dp-dst", PAGES * PS);
    const { sender, receiver, notices } = bulkPair(cleanups, src, PS, PAGES);
    receiver.setTarget(dst, uffd, map.address, PS, PAGES);
    receiver.start(new Uint8Array(0));

    const first = Array.from({ length: 48 }, (_, p) => p);
    const second = [...Array.from({ length: 48 }, (_, p) => 48 + p), 3, 4, 5, 6]; // the last four are there already: EEXIST
    const frames = [...batches(src, first), null, ...batches(src, second, 13)];
    for (const f of frames) {
      if (f === null) sender.frame(encodeMessage({ type: "cancel", reason: "barrier" }, PS));
      else sender.pages(f.pages, f.zero);
    }
    // Pages notices of consecutive frames JS had not taken yet arrive merged (up to 256 pages), each saying how many frames it stands for.
    const framesIn = (): number => notices.reduce((a, n) => a + (n.kind === "pages" ? n.frames : 1), 0);
    await new Promise<void>((resolve) => {
      const check = (): void => (framesIn() === frames.length ? resolve() : void setTimeout(check, 5));
      check();
    });
    const runs = (kinds: string[]): string[] => kinds.filter((k, i) => k !== "pages" || kinds[i - 1] !== "pages");
    expect(runs(notices.map((n) => n.kind))).toEqual(runs(frames.map((f) => (f === null ? "frame" : "pages"))));
    for (const n of notices) if (n.kind === "pages") expect(n.pages.length).toBeLessThanOrEqual(256);
    const installed = notices.flatMap((n) => (n.kind === "pages" ? Array.from(n.pages) : []));
    expect(installed).toEqual([...first, ...second]);
    for (let p = 0; p < PAGES; p++) expect(pread(dst, p * PS, PS).equals(pread(src, p * PS, PS)), `page ${p}`).toBe(true);
    // Every page is present in the mapping now (a load would otherwise fault and hang this test).
    expect(map.readU64(5 * PS)).toBe(pread(src, 5 * PS, 8).readBigUInt64LE(0));
    expect(receiver.stats().pages).toBe(installed.length);
    receiver.stop();
    sender.stop();
  });

  it.skipIf(unavailable !== null)("the receiver merges the pages notices JS has not taken yet: consecutive frames in one notice, with their count, in order", async () => {
    const src = sourceMemory();
    const { sender, receiver, notices } = bulkPair(cleanups, src, PS, PAGES);
    receiver.discardPages(PS, PAGES);
    receiver.start(new Uint8Array(0));
    const frames = batches(src, Array.from({ length: PAGES }, (_, p) => p));
    for (const f of frames) sender.pages(f.pages, f.zero);
    // This thread stays off the event loop until the receiver took every frame (stats() is a plain read):
    // no notice can be taken meanwhile, so all but perhaps the last frame's wait in one.
    const deadline = Date.now() + 60_000;
    while (receiver.stats().pages < PAGES && Date.now() < deadline) continue;
    await new Promise<void>((resolve) => {
      const check = (): void => (notices.reduce((a, n) => a + (n.kind === "pages" ? n.frames : 0), 0) === frames.length ? resolve() : void setTimeout(check, 5));
      check();
    });
    expect(notices.length).toBeLessThanOrEqual(2);
    expect(notices.every((n) => n.kind === "pages")).toBe(true);
    expect(notices.flatMap((n) => (n.kind === "pages" ? Array.from(n.pages) : []))).toEqual(frames.flatMap((f) => Array.from(f.pages)));
    expect(notices.flatMap((n) => (n.kind === "pages" ? Array.from(n.zero) : []))).toEqual(frames.flatMap((f) => Array.from(f.zero)));
    sender.stop();
    receiver.stop();
  });

  it("both threads start at the event loops' priority and drop to the bulk one past the switchover: the sender after writing that frame, the receiver once told", async () => {
    const src = sourceMemory();
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(a), () => closeFd(b));
    const sender = startBulkSender(a, src, PS, PAGES, 64 * 1024, () => undefined, 0);
    cleanups.push(() => sender.stop());
    const notices: BulkNotice[] = [];
    const receiver = createBulkReceiver(b, limits(), 30_000, (ns) => {
      for (const n of ns) {
        notices.push(n);
        if (n.kind !== "frame") continue;
        // The destination took the frame (as it takes the switchover): its guest may run now.
        expect(receiver.stats().nice).toBe(0);
        receiver.setNice(10);
        receiver.release();
      }
    }, 0);
    cleanups.push(() => receiver.stop());
    receiver.discardPages(PS, PAGES);
    receiver.start(new Uint8Array(0));
    const until = (f: () => boolean): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => (f() ? resolve() : void setTimeout(check, 5));
        check();
      });
    const [first] = batches(src, [0, 1, 2]);
    sender.pages(first.pages, first.zero);
    await until(() => notices.length === 1);
    expect(sender.stats().nice).toBe(0);
    const frame = encodeMessage({ type: "cancel", reason: "stands in for the switchover" }, PS);
    const end = sender.written + sender.queued + frame.length;
    sender.frame(frame, 10);
    await until(() => sender.written === end && notices.length === 2);
    expect(sender.stats()).toMatchObject({ nice: 10, niceErrno: 0 });
    const [after] = batches(src, [3, 4]);
    sender.pages(after.pages, after.zero);
    await until(() => notices.length === 3);
    expect(receiver.stats()).toMatchObject({ nice: 10, niceErrno: 0 });
    expect(notices.map((n) => n.kind)).toEqual(["pages", "frame", "pages"]);
    expect(() => sender.frame(frame, 20)).toThrow(/niceAfter must be 0/);
    expect(() => receiver.setNice(20)).toThrow(/nice must be 0/);
  });

  it("the receiver refers a bad frame to the engine's decoder and reads no further", async () => {
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(a), () => closeFd(b));
    const notices: BulkNotice[] = [];
    const receiver = createBulkReceiver(b, limits(), 30_000, (ns) => notices.push(...ns));
    cleanups.push(() => receiver.stop());
    const bad = encodeMessage({ type: "cancel", reason: "x" }, PS);
    bad[0] = 0x47; // not the magic
    receiver.start(Buffer.concat([bad, bad]));
    await new Promise<void>((resolve) => {
      const check = (): void => (notices.length > 0 ? resolve() : void setTimeout(check, 5));
      check();
    });
    expect(notices).toHaveLength(1);
    const n = notices[0];
    expect(n.kind === "frame" && n.refused).toBe(true);
    const d = new FrameDecoder(PS);
    expect(() => {
      d.push(n.kind === "frame" ? n.bytes : new Uint8Array(0));
      d.check();
    }).toThrow(/bad frame magic 0x5047/);
  });

  for (const way of ["loop", "thread"] as const) {
    it(`the source punches a committed frame's pages once the destination installed past its end, and forgets the log with the link (${way})`, async () => {
      const fd = sourceMemory();
      const log = new ReleaseLog(fd, PS, undefined, way);
        cleanups.push(() => log.stop());
      log.sample(0);
      log.sent(2, 0, 1000, Uint32Array.of(0, 2, 3));
      log.sent(2, 0, 2000, Uint32Array.of(5, 6));
      log.sent(2, 0, 3000, Uint32Array.of(8));
      log.taken(2, [1999], 1); // the second frame is not whole yet
      await log.settled();
      expect(Array.from(memfdDataPages(fd, 0, 9, PS))).toEqual([0, 0, 0, 0, 0, 1, 1, 0, 1]);
      log.taken(1, [5000], 2); // another epoch's count says nothing about this one
      await log.settled();
      expect(log.punchedPages).toBe(3);
      log.taken(2, [2000], 3);
      await log.settled();
      expect(Array.from(memfdDataPages(fd, 0, 9, PS))).toEqual([0, 0, 0, 0, 0, 0, 0, 0, 1]);
      log.forget();
      log.taken(2, [3000], 4);
      await log.settled();
      expect(log.punchedPages).toBe(5);
      expect(memfdDataPages(fd, 8, 1, PS)[0]).toBe(1);
      expect(log.samples.map((x) => x.at)).toEqual([0, 1, 2, 3, 4]);
      expect(log.samples[0].bytes).toBeGreaterThan(log.samples[4].bytes);
      expect(log.peakBytes).toBe(log.samples[0].bytes);
    });

    it(`with several bulk connections each frame is released by its own connection's count (${way})`, async () => {
      const fd = sourceMemory();
      const log = new ReleaseLog(fd, PS, undefined, way);
        cleanups.push(() => log.stop());
      log.sent(0, 0, 1000, Uint32Array.of(0, 1));
      log.sent(0, 1, 500, Uint32Array.of(4));
      log.sent(0, 2, 800, Uint32Array.of(6, 7));
      log.sent(0, 1, 1500, Uint32Array.of(8));
      // Connection 1 installed 1500 bytes, connection 0 less than its first frame, connection 2 nothing reported.
      log.taken(0, [999, 1500], 1);
      await log.settled();
      expect(Array.from(memfdDataPages(fd, 0, 9, PS))).toEqual([1, 0, 1, 1, 0, 1, 1, 0, 0]);
      log.taken(0, [1000, 1500, 800], 2);
      await log.settled();
      expect(Array.from(memfdDataPages(fd, 0, 9, PS))).toEqual([0, 0, 1, 1, 0, 1, 0, 0, 0]);
      expect(log.punchedPages).toBe(6);
    });
  }

  it("the punching thread punches on its own duplicate of the memfd, refuses runs outside it, and drops what is queued at stop", async () => {
    const fd = memfdCreate("dp-punch", PAGES * PS);
    for (let p = 0; p < PAGES; p++) pwrite(fd, p * PS, Buffer.alloc(PS, 1));
    const t = startPuncher(fd, PS, PAGES, 19, 8);
    cleanups.push(() => t.stop());
    expect(() => t.punch(Uint32Array.of(PAGES - 1, 2))).toThrow(/outside the memfd/);
    expect(() => t.punch(Uint32Array.of(3))).toThrow(/pairs/);
    // Another description of the same memory, to look at it after JS's own fd is closed.
    const view = openSync(`/proc/self/fd/${fd}`, "r");
    cleanups.push(() => closeSync(view));
    expect(t.punch(Uint32Array.of(0, 2, 10, PAGES - 10))).toBe(PAGES - 8);
    // JS's fd may close (and its number name another file) while runs are queued: the thread keeps its own.
    closeFd(fd);
    const end = Date.now() + 5000;
    while (t.stats().punched < PAGES - 8 && Date.now() < end) await new Promise((r) => setTimeout(r, 1));
    expect(t.stats()).toMatchObject({ punched: PAGES - 8, queued: 0, errno: 0, nice: 19, niceErrno: 0 });
    expect(Array.from(memfdDataPages(view, 0, 12, PS))).toEqual([0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0]);
    t.stop();
    expect(() => t.punch(Uint32Array.of(0, 1))).toThrow(/after stop/);
  });

});
