/**
 * The native data plane's bulk path on hugetlbfs (issue 9, docs/huge-pages.md),
 * both threads in-process over a socketpair: the sender preads 2 MiB pages
 * from a hugetlbfs memfd, the receiver installs each by one UFFDIO_COPY
 * straight from the frame — before the guest runs (a resend: punched out and
 * copied again, hugetlbfs having no write(2)) and after it (EEXIST: there
 * already, woken) — a zero page by a COPY of zeros. Then a hostile peer: a
 * frame of a base page's size, one beyond the layout, a count over the
 * codec's, a frame longer than 16 huge pages — each is referred to the
 * engine's decoder (which refuses it, or the engine does: a page beyond the
 * layout) with nothing installed, the thread
 * alive (a bad frame's payload) or stopped at the header (too long), and the
 * pool is as it was. Nothing here depends on timing.
 * Skips, saying why, without userfaultfd or a 2 MiB pool we may use.
 */
import { describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import { FrameDecoder } from "../src/engine/frame-decoder.js";
import { MAX_HUGE_PAGES_PER_FRAME, receiverLimits } from "../src/real/dataplane-recv.js";
import { reserveHugePages } from "../src/real/huge-reserve.js";
import { closeFd, constants, createBulkReceiver, mapShared, memfdCreate, socketPair, startBulkSender, uffdApi, uffdCreate, uffdRegister, type BulkNotice } from "../src/real/native.js";
import { HUGE, holdPoolForFile, hugeUnavailable, nr, pattern, unalignedSrc } from "./support/huge-test.js";

const PAGES = 4;
const unavailable = hugeUnavailable(PAGES);
if (unavailable !== null) console.log(`skipping the huge-page bulk path: ${unavailable}`);

const C = constants();
const cleanups: (() => void)[] = [];
holdPoolForFile(cleanups);

async function until<T>(what: () => T | undefined): Promise<T> {
  for (;;) {
    const v = what();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 5));
  }
}

function frame(tag: number, payload: Buffer, claimed = payload.length): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16LE(0x5050, 0);
  h.writeUInt8(tag, 2);
  h.writeUInt32LE(claimed, 4);
  return Buffer.concat([h, payload]);
}

/** A pages frame (tag 3): count, then per page its index, flags 0 and these bytes. */
function pagesFrame(pages: number[], data: Buffer[], count = pages.length): Buffer {
  const n = Buffer.alloc(4);
  n.writeUInt32LE(count, 0);
  const parts: Buffer[] = [n];
  pages.forEach((p, i) => {
    const e = Buffer.alloc(5);
    e.writeUInt32LE(p, 0);
    parts.push(e, data[i]);
  });
  return frame(3, Buffer.concat(parts));
}

/** The destination: a hugetlbfs memfd mapped here and registered MISSING, a receiver on `fd` installing into it. */
function destination(fd: number) {
  const mem = memfdCreate("huge-bulk-dest", PAGES * HUGE, HUGE);
  const map = mapShared(mem, PAGES * HUGE);
  const uffd = uffdCreate();
  uffdApi(uffd, C.UFFD_FEATURE_MISSING_HUGETLBFS);
  uffdRegister(uffd, map.address, PAGES * HUGE, C.UFFDIO_REGISTER_MODE_MISSING);
  const notices: BulkNotice[] = [];
  const receiver = createBulkReceiver(fd, receiverLimits(HUGE, PAGES), 30_000, (ns) => notices.push(...ns));
  receiver.setTarget(mem, uffd, map.address, HUGE, PAGES);
  receiver.start(new Uint8Array(0));
  cleanups.push(() => {
    receiver.stop();
    map.unmap();
    closeFd(uffd);
    closeFd(mem);
  });
  return { map, receiver, notices };
}

/** The source: a hugetlbfs memfd written through a mapping (no write(2)); page 2 stays a hole. */
function source() {
  const src = memfdCreate("huge-bulk-src", PAGES * HUGE, HUGE);
  const smap = mapShared(src, PAGES * HUGE);
  cleanups.push(() => {
    smap.unmap();
    closeFd(src);
  });
  for (const p of [0, 1, 3]) smap.write(p * HUGE, pattern(p));
  return { src, smap };
}

/** A sender of raw frames only (its memfd is never read). */
function frameSender(fd: number) {
  const none = memfdCreate("huge-bulk-none", HUGE, HUGE);
  const sender = startBulkSender(fd, none, HUGE, 1, 64 * 1024, () => undefined);
  cleanups.push(() => {
    sender.stop();
    closeFd(none);
  });
  return sender;
}

/** The pool grown by PAGES, a destination's receiver on one end of a socketpair and a raw frame sender on the other; `before`: the pool's size first. */
function hostilePair() {
  const before = nr();
  const pool = reserveHugePages(HUGE, PAGES);
  cleanups.push(() => pool.release());
  const [a, b] = socketPair();
  cleanups.push(() => closeFd(a), () => closeFd(b));
  return { before, d: destination(b), sender: frameSender(a) };
}

const installed = (ns: BulkNotice[]): number[] => ns.flatMap((n) => (n.kind === "pages" ? Array.from(n.pages) : []));

describe("the bulk receiver's bounds for huge pages", () => {
  it("a pages frame of huge pages is bounded at 16 of them; base pages keep the codec's bound", () => {
    expect(receiverLimits(HUGE, 512)[3]).toBe(4 + MAX_HUGE_PAGES_PER_FRAME * (5 + HUGE));
    expect(receiverLimits(4096, 512)[3]).toBe(4 + 256 * (5 + 4096));
  });
});

describe.skipIf(unavailable !== null)("the native bulk path on 2 MiB hugetlbfs pages", () => {
  it("sends huge pages from the memfd and installs each by UFFDIO_COPY, before the guest runs (a resend punched and copied again) and after (EEXIST: woken)", async () => {
    const before = nr();
    const pool = reserveHugePages(HUGE, 2 * PAGES);
    cleanups.push(() => pool.release());
    const { src, smap } = source();
    const [a, b] = socketPair();
    cleanups.push(() => closeFd(a), () => closeFd(b));
    const sender = startBulkSender(a, src, HUGE, PAGES, 64 * 1024, () => undefined);
    cleanups.push(() => sender.stop());
    expect(sender.stats().way).toBe("preadv");
    const d = destination(b);
    // Pre-copy's first round: all four pages in one frame (page 2 a zero page), then page 1 rewritten and resent.
    let bytes = sender.pages(Uint32Array.from([0, 1, 2, 3]), Uint8Array.from([0, 0, 1, 0]));
    expect(bytes).toBe(8 + 4 + 4 * 5 + 3 * HUGE);
    await until(() => (installed(d.notices).length === 4 ? true : undefined));
    smap.write(HUGE, pattern(9));
    bytes += sender.pages(Uint32Array.from([1]), Uint8Array.from([0]));
    await until(() => (installed(d.notices).length === 5 ? true : undefined));
    // The switchover stands in: the receiver stops at it; from it on the guest may run.
    bytes += sender.frame(encodeMessage({ type: "cancel", reason: "stands in for the switchover" }, HUGE));
    await until(() => d.notices.find((n) => n.kind === "frame"));
    d.receiver.setRunning();
    d.receiver.release();
    // Page 3 again once the guest may run: it is there (EEXIST), its waiters woken, the older copy kept.
    smap.write(3 * HUGE, pattern(7));
    bytes += sender.pages(Uint32Array.from([3]), Uint8Array.from([0]));
    await until(() => (installed(d.notices).length === 6 ? true : undefined));
    expect(sender.written).toBe(bytes);
    expect(installed(d.notices)).toEqual([0, 1, 2, 3, 1, 3]);
    expect(d.notices.some((n) => n.kind === "end")).toBe(false);
    expect(Buffer.compare(d.map.read(0, HUGE), pattern(0))).toBe(0);
    expect(Buffer.compare(d.map.read(HUGE, HUGE), pattern(9))).toBe(0);
    expect(d.map.read(2 * HUGE, HUGE).equals(Buffer.alloc(HUGE))).toBe(true);
    expect(Buffer.compare(d.map.read(3 * HUGE, HUGE), pattern(3))).toBe(0);
    // Five copies went in (four, then page 1's second after its punch); page 3's resend met EEXIST.
    const s = d.receiver.stats();
    expect(s).toMatchObject({ pages: 6, received: bytes });
    expect(s.hugeDirect + s.hugeStaged).toBe(5);
    if (unalignedSrc) expect(s).toMatchObject({ hugeDirect: 5, hugeStaged: 0 });
    while (cleanups.length > 0) cleanups.pop()?.();
    expect(nr()).toBe(before);
  });

  it.each([
    ["a page of a base page's size", pagesFrame([1], [pattern(1, 4096)]), /pages/],
    ["a page one byte short", pagesFrame([1], [pattern(1, HUGE - 1)]), /pages/],
    ["a page beyond the layout", pagesFrame([PAGES], [pattern(0)]), null],
    ["a count over the codec's 256", pagesFrame([0], [pattern(0)], 257), /pages/],
  ])("a pages frame with %s goes to the engine's decoder, which refuses it; nothing installed, the thread goes on", async (_what, bytes, why) => {
    const { before, d, sender } = hostilePair();
    sender.frame(bytes);
    const n = await until(() => d.notices.find((x) => x.kind === "frame"));
    expect(n.kind === "frame" && n.refused).toBe(false);
    const decoder = new FrameDecoder(HUGE);
    decoder.setLayout(HUGE, PAGES);
    const raw = n.kind === "frame" ? n.bytes : Buffer.alloc(0);
    // The decoder refuses what does not parse; a page beyond the layout parses, and the engine refuses it (as without the data plane).
    if (why !== null) expect(() => decoder.push(raw)).toThrow(why);
    else {
      const [m] = decoder.push(raw);
      expect(m.type === "pages" && Array.from(m.pages)).toEqual([PAGES]);
    }
    expect(d.receiver.stats()).toMatchObject({ pages: 0, hugeDirect: 0, hugeStaged: 0 });
    // The agent would end the connection here; the thread itself is unharmed: a good frame after it still goes in.
    d.receiver.release();
    sender.frame(pagesFrame([0], [pattern(5)]));
    await until(() => (installed(d.notices).length === 1 ? true : undefined));
    expect(Buffer.compare(d.map.read(0, HUGE), pattern(5))).toBe(0);
    while (cleanups.length > 0) cleanups.pop()?.();
    expect(nr()).toBe(before);
  });

  it("a pages frame claiming more than 16 huge pages is refused at its header: nothing more is read or held", async () => {
    const { before, d, sender } = hostilePair();
    // The header alone, and a little of the payload it claims (17 huge pages, 34 MiB): the thread must not wait for the rest.
    sender.frame(frame(3, Buffer.alloc(64), 4 + 17 * (5 + HUGE)));
    const n = await until(() => d.notices.find((x) => x.kind === "frame"));
    expect(n.kind === "frame" && n.refused).toBe(true);
    expect(n.kind === "frame" && n.bytes.length).toBe(8);
    expect(d.receiver.stats()).toMatchObject({ pages: 0, received: 0 });
    while (cleanups.length > 0) cleanups.pop()?.();
    expect(nr()).toBe(before);
  });
});
