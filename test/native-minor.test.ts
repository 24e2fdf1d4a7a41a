/**
 * What a destination that receives pages into the page cache and maps them
 * with UFFDIO_CONTINUE would rely on (issue 9, "one copy fewer"), checked on
 * the kernel at hand with a memfd mapped twice — the guest's view,
 * registered MISSING|MINOR, and the agent's plain one:
 * - a hole faults MISSING, a page in the page cache but not mapped faults
 *   MINOR — also while its bytes are only partly written, so the guest never
 *   sees a page before CONTINUE maps it;
 * - UFFDIO_COPY onto a page already in the page cache is EEXIST (a demand
 *   reply cannot overtake a receive in progress: it must wait for it);
 * - CONTINUE of a hole is EFAULT, of a mapped page EEXIST;
 * - registered MINOR only, a hole reads as zeros without any fault (so
 *   MINOR alone needs every page to exist first).
 * Nothing here depends on timing: each fault is awaited as an event.
 */
import { readFileSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import type { Message } from "../src/engine/messages.js";
import {
  closeFd,
  constants,
  createPageTable,
  errnoCode,
  mapShared,
  memfdCreate,
  pread,
  punchHole,
  startFaultReader,
  TableInstall,
  uffdApi,
  uffdContinue,
  uffdCopy,
  uffdCreate,
  uffdRegister,
  type FaultEvent,
  type Mapping,
} from "../src/real/native.js";
import { pagesMsg } from "./support/pages.js";
import { bulkPair } from "./support/bulk-pair.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const C = constants();
const PS = C.PAGE_SIZE;
const PAGES = 8;

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

function guestAndAgent(mode: number, features: number): { guest: Mapping; agent: Mapping; uffd: number; events: FaultEvent[] } {
  const fd = memfdCreate("minor", PAGES * PS);
  cleanups.push(() => closeFd(fd));
  const guest = mapShared(fd, PAGES * PS);
  const agent = mapShared(fd, PAGES * PS);
  cleanups.push(() => guest.unmap(), () => agent.unmap());
  const uffd = uffdCreate();
  cleanups.push(() => closeFd(uffd));
  uffdApi(uffd, features);
  uffdRegister(uffd, guest.address, PAGES * PS, mode);
  const events: FaultEvent[] = [];
  const reader = startFaultReader(uffd, (e) => events.push(...e));
  cleanups.push(() => reader.stop());
  return { guest, agent, uffd, events };
}

/** Resolves with the flags of the next fault once it has arrived. */
function nextFault(events: FaultEvent[]): Promise<number> {
  const seen = events.length;
  return new Promise((resolve) => {
    const check = (): void => (events.length > seen ? resolve(events[seen].flags) : void setTimeout(check, 2));
    check();
  });
}

const errno = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    return errnoCode(e);
  }
};

describe.skipIf(userfaultfdUnavailable() !== null)("minor faults on a memfd (the page-cache install path)", () => {
  it("MISSING|MINOR: holes fault missing, page-cache pages minor (even part-written) until CONTINUE; COPY onto them is EEXIST", async () => {
    const features = C.UFFD_FEATURE_MISSING_SHMEM | C.UFFD_FEATURE_MINOR_SHMEM | C.UFFD_FEATURE_THREAD_ID;
    const { guest, agent, uffd, events } = guestAndAgent(C.UFFDIO_REGISTER_MODE_MISSING | C.UFFDIO_REGISTER_MODE_MINOR, features);
    const at = (p: number): bigint => guest.address + BigInt(p * PS);

    let fault = nextFault(events);
    let load = guest.touchAsync(0);
    expect((await fault) & C.UFFD_PAGEFAULT_FLAG_MINOR).toBe(0);
    uffdCopy(uffd, at(0), Buffer.alloc(PS, 1));
    expect(await load).toBe(0x0101010101010101n);

    // Page 1: its first word written through the agent's mapping, the rest not yet.
    agent.writeU64(PS, 0x55n);
    fault = nextFault(events);
    load = guest.touchAsync(PS + 8);
    expect((await fault) & C.UFFD_PAGEFAULT_FLAG_MINOR).toBe(C.UFFD_PAGEFAULT_FLAG_MINOR);
    expect(errno(() => uffdCopy(uffd, at(1), Buffer.alloc(PS, 3)))).toBe("EEXIST");
    agent.writeU64(PS + 8, 0x66n);
    uffdContinue(uffd, at(1), PS);
    expect(await load).toBe(0x66n);
    expect(errno(() => uffdContinue(uffd, at(1), PS))).toBe("EEXIST");
    expect(errno(() => uffdContinue(uffd, at(5), PS))).toBe("EFAULT");
  });

  it("MINOR only: a hole reads as zeros without a fault", async () => {
    const { guest, events } = guestAndAgent(C.UFFDIO_REGISTER_MODE_MINOR, C.UFFD_FEATURE_MINOR_SHMEM | C.UFFD_FEATURE_THREAD_ID);
    expect(await guest.touchAsync(3 * PS)).toBe(0n);
    expect(events).toHaveLength(0);
  });
});

/**
 * Install mode "continue" (native/src/page_states.h): one page table shared by
 * a bulk receiver thread and the urgent reply's install (PageTable.install).
 * Both orders of the overlap are forced by the test's own sequence: each
 * frame is awaited as the receiver's notice before the next step. Each case
 * runs on fresh memory and on memory populated ahead (dest-prealloc.ts: every
 * page allocated, zero, and mapped in the agent's alias that the table takes
 * over; an absent page then faults MINOR, and a zero page is mapped unwritten).
 */
describe.skipIf(userfaultfdUnavailable() !== null).each([false, true])("install mode continue: the claims (populated ahead: %s)", (populated) => {
  const word = (p: number, k: number): bigint => 0x1000n * BigInt(p + 1) + BigInt(k);
  /** A page whose word i is word(tag, i). */
  const page = (tag: number): Buffer => {
    const b = Buffer.alloc(PS);
    for (let i = 0; i < PS / 8; i++) b.writeBigUInt64LE(word(tag, i), i * 8);
    return b;
  };

  async function rig() {
    const features = C.UFFD_FEATURE_MISSING_SHMEM | C.UFFD_FEATURE_MINOR_SHMEM | C.UFFD_FEATURE_THREAD_ID;
    const fd = memfdCreate("continue", PAGES * PS);
    cleanups.push(() => closeFd(fd));
    const alias = populated ? mapShared(fd, PAGES * PS) : null;
    await alias?.populateAsync();
    const guest = mapShared(fd, PAGES * PS);
    cleanups.push(() => guest.unmap());
    const uffd = uffdCreate();
    cleanups.push(() => closeFd(uffd));
    uffdApi(uffd, features);
    uffdRegister(uffd, guest.address, PAGES * PS, C.UFFDIO_REGISTER_MODE_MISSING | C.UFFDIO_REGISTER_MODE_MINOR);
    const events: FaultEvent[] = [];
    const reader = startFaultReader(uffd, (e) => events.push(...e));
    cleanups.push(() => reader.stop());
    const table = createPageTable(fd, uffd, guest.address, PS, PAGES, alias);
    expect(alias?.mapped ?? false).toBe(false); // the table's now
    cleanups.push(() => table.close());
    const src = memfdCreate("continue-src", PAGES * PS);
    cleanups.push(() => closeFd(src));
    const { sender, receiver, notices } = bulkPair(cleanups, src, PS, PAGES);
    receiver.setTarget(fd, uffd, guest.address, PS, PAGES, table);
    receiver.start(new Uint8Array(0));
    /** Sends a frame on the bulk connection and resolves once the receiver has acted on it. */
    const bulk = (m: Message<Uint8Array>): Promise<void> => {
      const seen = notices.length;
      sender.frame(encodeMessage(m, PS));
      return new Promise((resolve) => {
        const check = (): void => (notices.length > seen ? resolve() : void setTimeout(check, 2));
        check();
      });
    };
    const switchover = (): Promise<void> => bulk({ type: "cancel", reason: "stands in for the switchover" });
    const at = (p: number, k = 0): number => p * PS + k * 8;
    return { fd, guest, events, table, receiver, bulk, switchover, at };
  }

  it("urgent first: the later bulk copy is dropped, the guest's write kept; bulk first: the urgent copy is dropped", async () => {
    const { fd, guest, events, table, receiver, bulk, switchover, at } = await rig();
    await switchover();
    // Page 2 demanded and installed first; the guest writes to it; then the bulk copy arrives.
    expect(table.install(2, page(20), true)).toBe(TableInstall.Installed);
    expect(table.state(2)).toBe(2);
    expect(await guest.touchAsync(at(2, 5))).toBe(word(20, 5));
    await guest.touchAsync(at(2, 1), 0x77n);
    await bulk(pagesMsg([{ page: 2, data: page(21) }]));
    expect(receiver.stats().lost).toBe(1);
    expect(pread(fd, at(2), 16).readBigUInt64LE(0)).toBe(word(20, 0));
    expect(pread(fd, at(2), 16).readBigUInt64LE(8)).toBe(0x77n);
    // Page 3 from bulk first; the demanded copy that follows finds it mapped.
    await bulk(pagesMsg([{ page: 3, data: page(31) }]));
    expect(table.install(3, page(30), true)).toBe(TableInstall.Mapped);
    expect(pread(fd, at(3), PS).equals(page(31))).toBe(true);
    expect(await guest.touchAsync(at(3, 9))).toBe(word(31, 9));
    // A run where one page is another path's: the others are installed, that one left alone.
    expect(table.install(5, page(50), true)).toBe(TableInstall.Installed);
    await bulk(pagesMsg([4, 5, 6].map((p) => ({ page: p, data: page(p * 10 + 1) }))));
    expect(receiver.stats().lost).toBe(2);
    for (const [p, tag] of [[4, 41], [5, 50], [6, 61]]) expect(pread(fd, at(p), PS).equals(page(tag)), `page ${p}`).toBe(true);
    expect(events).toHaveLength(0); // every page was mapped before the guest touched it
  });

  it("a fault on a missing page waits for the bulk copy's map; a zero page maps zeros", async () => {
    const { guest, events, table, bulk, switchover, at } = await rig();
    await switchover();
    const load = guest.touchAsync(at(4, 3));
    await nextFault(events);
    expect(events[0].flags & C.UFFD_PAGEFAULT_FLAG_MINOR).toBe(populated ? C.UFFD_PAGEFAULT_FLAG_MINOR : 0);
    await bulk(pagesMsg([{ page: 4, data: page(40) }, { page: 7, data: null }]));
    expect(await load).toBe(word(40, 3));
    expect(table.install(4, page(99), true)).toBe(TableInstall.Mapped);
    expect(await guest.touchAsync(at(4, 3))).toBe(word(40, 3));
    expect(table.state(7)).toBe(2);
    expect(await guest.touchAsync(at(7, 2))).toBe(0n);
    expect(events).toHaveLength(1);
  });

  it("before the guest runs pages are written and mapped at once (resends overwrite; nothing faults after resume); dropped pages are claimed anew", async () => {
    const { fd, guest, events, table, bulk, switchover, at } = await rig();
    await bulk(pagesMsg([{ page: 1, data: page(10) }, { page: 2, data: null }]));
    await bulk(pagesMsg([{ page: 1, data: page(11) }]));
    expect(table.install(3, page(30), false)).toBe(TableInstall.Installed);
    expect(table.install(3, page(31), false)).toBe(TableInstall.Installed);
    expect(table.install(0, null, false)).toBe(TableInstall.Installed);
    // The switchover's stale page 3: punched out (what DestinationMemory.drop does) and absent again.
    punchHole(fd, at(3), PS);
    table.markAbsent(Uint32Array.of(3));
    expect(table.state(3)).toBe(0);
    await switchover();
    expect(await guest.touchAsync(at(1, 4))).toBe(word(11, 4));
    expect(await guest.touchAsync(at(2, 4))).toBe(0n);
    expect(await guest.touchAsync(at(0, 4))).toBe(0n);
    expect(events).toHaveLength(0);
    expect(table.install(3, page(32), true)).toBe(TableInstall.Installed);
    expect(await guest.touchAsync(at(3, 4))).toBe(word(32, 4));
    expect(events).toHaveLength(0);
  });

  it.skipIf(!populated)("populated: zero pages punched to holes since are mapped too, alone and between data pages", async () => {
    const { fd, guest, events, table, bulk, switchover, at } = await rig();
    // Punched while the guest does not run (the switchover's stale pages): holes in populated memory.
    punchHole(fd, at(2), PS);
    punchHole(fd, at(5), PS);
    punchHole(fd, at(3), PS);
    table.markAbsent(Uint32Array.of(2, 5, 3));
    await switchover();
    await bulk(pagesMsg([{ page: 4, data: page(40) }, { page: 5, data: null }, { page: 6, data: page(60) }]));
    // Data into a hole: the store through the alias faults a fresh page in, then CONTINUE maps it.
    await bulk(pagesMsg([{ page: 3, data: page(30) }]));
    expect(await guest.touchAsync(at(3, 7))).toBe(word(30, 7));
    await bulk(pagesMsg([{ page: 2, data: null }]));
    expect(table.install(1, null, true)).toBe(TableInstall.Installed);
    for (const p of [1, 2, 3, 4, 5, 6]) expect(table.state(p), `page ${p}`).toBe(2);
    expect(await guest.touchAsync(at(4, 7))).toBe(word(40, 7));
    expect(await guest.touchAsync(at(5, 7))).toBe(0n);
    expect(await guest.touchAsync(at(6, 7))).toBe(word(60, 7));
    expect(await guest.touchAsync(at(2, 7))).toBe(0n);
    expect(await guest.touchAsync(at(1, 7))).toBe(0n);
    expect(events).toHaveLength(0);
  });

  it.skipIf(!populated)("populated: a zero page resent before the guest runs over an older copy is zeros", async () => {
    const { fd, guest, events, table, bulk, switchover, at } = await rig();
    await bulk(pagesMsg([{ page: 3, data: page(30) }, { page: 4, data: page(40) }]));
    await bulk(pagesMsg([{ page: 3, data: null }]));
    expect(table.install(4, null, false)).toBe(TableInstall.Installed);
    expect(pread(fd, at(3), PS).equals(Buffer.alloc(PS))).toBe(true);
    expect(pread(fd, at(4), PS).equals(Buffer.alloc(PS))).toBe(true);
    await switchover();
    expect(await guest.touchAsync(at(3, 1))).toBe(0n);
    expect(await guest.touchAsync(at(4, 1))).toBe(0n);
    expect(events).toHaveLength(0);
  });
});

describe.skipIf(userfaultfdUnavailable() !== null)("a page table's alias", () => {
  const mapped = (address: bigint): boolean =>
    readFileSync("/proc/self/maps", "utf8")
      .split("\n")
      .some((l) => l.startsWith(`${address.toString(16)}-`));

  it("is unmapped once the table is closed and the last receiver holding it stopped", async () => {
    const fd = memfdCreate("alias-life", PAGES * PS);
    cleanups.push(() => closeFd(fd));
    const guest = mapShared(fd, PAGES * PS);
    cleanups.push(() => guest.unmap());
    const uffd = uffdCreate();
    cleanups.push(() => closeFd(uffd));
    uffdApi(uffd, C.UFFD_FEATURE_MISSING_SHMEM | C.UFFD_FEATURE_MINOR_SHMEM);
    uffdRegister(uffd, guest.address, PAGES * PS, C.UFFDIO_REGISTER_MODE_MISSING | C.UFFDIO_REGISTER_MODE_MINOR);
    const alias = mapShared(fd, PAGES * PS);
    await alias.populateAsync();
    const at = alias.address;
    const table = createPageTable(fd, uffd, guest.address, PS, PAGES, alias);
    const src = memfdCreate("alias-life-src", PAGES * PS);
    cleanups.push(() => closeFd(src));
    const local: (() => void)[] = [];
    const { receiver } = bulkPair(local, src, PS, PAGES);
    receiver.setTarget(fd, uffd, guest.address, PS, PAGES, table);
    expect(mapped(at)).toBe(true);
    table.close();
    expect(mapped(at)).toBe(true); // the receiver still holds it
    expect(() => table.state(0)).toThrow(/closed/);
    expect(() => receiver.setTarget(fd, uffd, guest.address, PS, PAGES, table)).toThrow(/pageTable is closed/);
    while (local.length > 0) local.pop()?.();
    expect(mapped(at)).toBe(false);
  });

  it("must be a Mapping of exactly the guest's memory, and is taken over", () => {
    const fd = memfdCreate("alias", PAGES * PS);
    cleanups.push(() => closeFd(fd));
    const uffd = uffdCreate();
    cleanups.push(() => closeFd(uffd));
    const short = mapShared(fd, (PAGES - 1) * PS);
    expect(() => createPageTable(fd, uffd, 0n, PS, PAGES, short)).toThrow(/alias is .* bytes, the guest's RAM/);
    expect(short.mapped).toBe(false); // taken, then unmapped with the refusal
    expect(() => createPageTable(fd, uffd, 0n, PS, PAGES, {} as Mapping)).toThrow(/alias must be a Mapping/);
  });
});
