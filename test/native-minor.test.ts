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
import { afterEach, describe, expect, it } from "vitest";
import { closeFd, constants, errnoCode, mapShared, memfdCreate, startFaultReader, uffdApi, uffdContinue, uffdCopy, uffdCreate, uffdRegister, type FaultEvent, type Mapping } from "../src/real/native.js";
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
