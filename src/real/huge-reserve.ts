/**
 * Huge pages for a guest on hugetlbfs: the kernel keeps a pool per size
 * (/sys/kernel/mm/hugepages/hugepages-<kB>kB), and a guest's mmap fails with
 * ENOMEM unless enough of it is free. When the pool is short and we may
 * (root), we grow it by the shortfall and shrink it by as much again when the
 * guest is done; otherwise we say what to do. Shrinking below the pages in use
 * is safe: the kernel turns those into surplus pages and frees them when their
 * last user lets go.
 */
import { readFileSync, writeFileSync } from "node:fs";

export class HugePagesError extends Error {
  override readonly name = "HugePagesError";
}

const poolDir = (size: number) => `/sys/kernel/mm/hugepages/hugepages-${size / 1024}kB`;

function readCount(path: string): number {
  const n = Number(readFileSync(path, "utf8").trim());
  if (!Number.isSafeInteger(n) || n < 0) throw new HugePagesError(`${path}: not a page count`);
  return n;
}

/** Pages of this size that a new mapping can still reserve: free minus those reserved by other mappings. */
export function availableHugePages(size: number, dir = poolDir(size)): number {
  try {
    return Math.max(0, readCount(`${dir}/free_hugepages`) - readCount(`${dir}/resv_hugepages`));
  } catch (e) {
    if (e instanceof HugePagesError) throw e;
    throw new HugePagesError(`this kernel has no pool of ${size}-byte huge pages (${dir}: ${(e as Error).message})`);
  }
}

/** This process's reservations not yet released, per size: a guest spawned but not yet mapped is not in resv_hugepages. */
const claimed = new Map<number, number>();

export interface HugeReservation {
  /** Pages this reservation added to the pool (0: the pool had enough). */
  readonly added: number;
  /** The guest has mapped its RAM (its pages now show in resv_hugepages): the claim is the kernel's to count. */
  mapped(): void;
  /** Gives the added pages back; idempotent. */
  release(): void;
}

/** Makes `count` pages of `size` bytes available to a guest about to map them (`dir`: the pool's sysfs directory). */
export function reserveHugePages(size: number, count: number, dir = poolDir(size)): HugeReservation {
  const pending = claimed.get(size) ?? 0;
  const short = count + pending - availableHugePages(size, dir);
  let added = 0;
  if (short > 0) {
    const nrPath = `${dir}/nr_hugepages`;
    const before = readCount(nrPath);
    try {
      writeFileSync(nrPath, String(before + short));
    } catch (e) {
      throw new HugePagesError(
        `the guest needs ${count} free huge pages of ${size / 1024} kB and ${Math.max(0, count - short)} are free; ` +
          `cannot grow the pool (${(e as Error).message}): as root, \`echo ${before + short} > ${nrPath}\`, or run ppsim as root`,
      );
    }
    added = readCount(nrPath) - before;
    if (added < short) {
      writeFileSync(nrPath, String(Math.max(0, readCount(nrPath) - added)));
      throw new HugePagesError(`the kernel found only ${added} of the ${short} more huge pages of ${size / 1024} kB asked for (memory is short or fragmented): free memory, or reserve them at boot (hugepages= on the kernel command line)`);
    }
  }
  claimed.set(size, pending + count);
  let claiming = true;
  let live = true;
  const unclaim = () => {
    if (claiming) claimed.set(size, (claimed.get(size) ?? count) - count);
    claiming = false;
  };
  return {
    added,
    mapped: unclaim,
    release: () => {
      unclaim();
      if (!live) return;
      live = false;
      if (added === 0) return;
      const nrPath = `${dir}/nr_hugepages`;
      try {
        writeFileSync(nrPath, String(Math.max(0, readCount(nrPath) - added)));
      } catch {
        /* best effort: the pool stays larger, which costs memory, not correctness */
      }
    },
  };
}

/** The huge-page size and memory of a guest config (src/workload/guest-config.ts), or null for base pages. */
export function hugeNeeds(config: string): { size: number; count: number } | null {
  const size = /^huge_page_size (\d+)$/m.exec(config);
  const mem = /^mem_bytes (\d+)$/m.exec(config);
  if (size === null || mem === null) return null;
  return { size: Number(size[1]), count: Number(mem[1]) / Number(size[1]) };
}

/** The page a guest of this config migrates in: its huge page on hugetlbfs, else the host's. */
export function migrationPageSize(config: string, hostPage: number): number {
  return hugeNeeds(config)?.size ?? hostPage;
}
