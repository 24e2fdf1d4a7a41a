/**
 * What the native readers of frames share (native/src/frame_reader.*): the
 * bulk receiver and the fault lane check setTarget's arguments one way (the
 * same words for the same mistake, and a refused target leaves the reader
 * able to take a good one), and each refuses a frame from its header alone —
 * nothing of a payload beyond its bound is waited for. Nothing here depends
 * on timing.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  closeFd,
  constants,
  createBulkReceiver,
  createFaultLane,
  createPageTable,
  memfdCreate,
  socketPair,
  uffdApi,
  uffdCreate,
  type BulkNotice,
  type LaneNotice,
  type PageTableHandle,
} from "../src/real/native.js";
import { receiverLimits } from "./support/bulk-pair.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const C = constants();
const PS = C.PAGE_SIZE;
const PAGES = 8;
const unavailable = userfaultfdUnavailable();

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

function fds(): { a: number; b: number; mem: number } {
  const [a, b] = socketPair();
  const mem = memfdCreate("frame-reader", PAGES * PS);
  cleanups.push(() => closeFd(a), () => closeFd(b), () => closeFd(mem));
  return { a, b, mem };
}

type Target = (memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number, table?: PageTableHandle) => void;

/** Each reader's setTarget, on a fresh reader of one end of a socket pair. */
const readers: [string, (sock: number) => { setTarget: Target }][] = [
  [
    "bulk receiver",
    (sock) => {
      const r = createBulkReceiver(sock, receiverLimits(PS, PAGES), 30_000, () => undefined);
      cleanups.push(() => r.stop());
      return { setTarget: (...a) => r.setTarget(...a) };
    },
  ],
  [
    "fault lane",
    (sock) => {
      const l = createFaultLane(sock, 30_000, () => undefined);
      cleanups.push(() => void l.stop());
      return { setTarget: (...a) => l.setTarget(...a) };
    },
  ],
];

const bad: [string, (mem: number) => Parameters<Target>, RegExp][] = [
  ["a page size not a power of two", (mem) => [mem, mem, 0n, 3000, PAGES], /pageSize must be a power of two up to 1 GiB/],
  ["a page size of 0", (mem) => [mem, mem, 0n, 0, PAGES], /pageSize must be a power of two up to 1 GiB/],
  ["a page size over 1 GiB", (mem) => [mem, mem, 0n, 2 ** 31, PAGES], /pageSize must be a power of two up to 1 GiB/],
  ["a base not page aligned", (mem) => [mem, mem, BigInt(PS + 8), PS, PAGES], /base must be page aligned/],
  ["no pages", (mem) => [mem, mem, 0n, PS, 0], /pageCount must be 1 … 2\^32/],
  ["more pages than a u32 numbers", (mem) => [mem, mem, 0n, PS, 2 ** 32 + 1], /pageCount must be 1 … 2\^32/],
  ["a closed memfd", () => [1 << 20, 1 << 20, 0n, PS, PAGES], /fcntl\(F_DUPFD_CLOEXEC, memfd 1048576\).*EBADF/],
];

describe("setTarget, one check for every reader", () => {
  for (const [name, make] of readers) {
    for (const [what, args, words] of bad) {
      it(`${name}: ${what} is refused with the shared words`, () => {
        const { b, mem } = fds();
        expect(() => make(b).setTarget(...args(mem))).toThrow(words);
      });
    }

    it.skipIf(unavailable !== null)(`${name}: a page table of another size is refused; then a good target is taken once, a second refused`, () => {
      const { b, mem } = fds();
      const uffd = uffdCreate();
      cleanups.push(() => closeFd(uffd));
      uffdApi(uffd, C.UFFD_FEATURE_THREAD_ID | C.UFFD_FEATURE_MISSING_SHMEM);
      const table = createPageTable(mem, uffd, 0n, PS, PAGES * 2);
      const r = make(b);
      expect(() => r.setTarget(mem, uffd, 0n, PS, PAGES, table)).toThrow(/the page table's page count is not the target's/);
      r.setTarget(mem, uffd, 0n, PS, PAGES);
      expect(() => r.setTarget(mem, uffd, 0n, PS, PAGES)).toThrow(/the target is set already.*EALREADY|EALREADY.*the target is set already/);
    });
  }
});

function until(ok: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => (ok() ? resolve() : void setTimeout(check, 5));
    check();
  });
}

/** A header whose payload length is far beyond any bound: only its 8 bytes are sent. */
const hugeHeader = (tag: number): Buffer => Buffer.from([0x50, 0x50, tag, 0, 0xff, 0xff, 0xff, 0x7f]);

describe("a frame refused from its header alone", () => {
  it("bulk receiver: a pages header over its bound is referred to JS at once, not waited for", async () => {
    const { b } = fds();
    const notices: BulkNotice[] = [];
    const r = createBulkReceiver(b, receiverLimits(PS, PAGES), 30_000, (n) => notices.push(...n));
    cleanups.push(() => r.stop());
    r.start(hugeHeader(3));
    await until(() => notices.length > 0);
    const n = notices[0];
    expect(n.kind === "frame" && n.refused).toBe(true);
    expect(n.kind === "frame" && Array.from(n.bytes)).toEqual(Array.from(hugeHeader(3)));
  });

  it.skipIf(unavailable !== null)("fault lane: a reply header over its bound ends the lane at once, not waited for", async () => {
    const { b, mem } = fds();
    const uffd = uffdCreate();
    cleanups.push(() => closeFd(uffd));
    uffdApi(uffd, C.UFFD_FEATURE_THREAD_ID | C.UFFD_FEATURE_MISSING_SHMEM);
    const notices: LaneNotice[] = [];
    const l = createFaultLane(b, 30_000, (n) => notices.push(...n));
    cleanups.push(() => void l.stop());
    l.setTarget(mem, uffd, 0n, PS, PAGES);
    l.arm();
    l.start(hugeHeader(3));
    await until(() => notices.length > 0);
    const n = notices[0];
    expect(n.kind === "end" && n.protocol).toBe(true);
    expect(n.kind === "end" && n.reason).toMatch(/not a page reply \(tag 3, 2147483647 bytes\)/);
  });
});
