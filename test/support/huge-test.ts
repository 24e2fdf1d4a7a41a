/**
 * What the test files on 2 MiB hugetlbfs pages (real-huge-*) share: whether
 * they may run here, the kernel's UFFDIO_COPY alignment rule, the pool's
 * size, a page pattern, and the per-file hold on the pool
 * (huge-pool-lock.ts) with each test's cleanups run after it.
 */
import { existsSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { afterAll, afterEach, beforeAll } from "vitest";
import { availableHugePages } from "../../src/real/huge-reserve.js";
import { holdHugePool } from "./huge-pool-lock.js";
import { userfaultfdUnavailable } from "./uffd.js";

export const HUGE = 2 << 20;
export const POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB";

/** Why a file needing `pages` huge pages cannot run here, or null. */
export function hugeUnavailable(pages: number): string | null {
  const uffd = userfaultfdUnavailable();
  if (uffd !== null) return `userfaultfd: ${uffd}`;
  if (!existsSync(POOL)) return "no 2 MiB huge-page pool on this kernel";
  if (process.getuid?.() !== 0 && availableHugePages(HUGE) < 2 * pages) return "not root, and too few free 2 MiB huge pages";
  return null;
}

/** Kernels since the 2023 change take UFFDIO_COPY's src unaligned (the copy goes straight from the frame); older ones through the staging buffer. */
const [major, minor] = release().split(".").map(Number);
export const unalignedSrc = major > 6 || (major === 6 && minor >= 8); // the change is from 2023 (6.6 or 6.7): a margin, not a bound

/** The pool's size now. */
export const nr = (): number => Number(readFileSync(`${POOL}/nr_hugepages`, "utf8"));

export function pattern(seed: number, size = HUGE): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((seed * 2654435761 + i) >>> 0, i);
  return b;
}

/** Holds the pool for the whole file (each file checks the pool is back as it was) and runs `cleanups` after each test, last first. */
export function holdPoolForFile(cleanups: (() => void)[]): void {
  let releasePool: (() => void) | null = null;
  beforeAll(async () => {
    releasePool = await holdHugePool();
  });
  afterAll(() => releasePool?.());
  afterEach(() => {
    while (cleanups.length > 0) cleanups.pop()?.();
  });
}
