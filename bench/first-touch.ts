/**
 * A machine limit every real benchmark should carry beside its figures: what
 * the first write to a page of fresh memory costs here. Every page a
 * destination installs with data (UFFDIO_COPY, or pwrite into its memfd
 * before its guest runs) lands in a page the kernel allocates for it, and a
 * zero page left a hole costs none (docs/real.md "Zero pages left holes").
 *
 * Why it is its own figure: this machine is a VM whose balloon driver
 * reports free memory to the host (virtio_balloon free page reporting, in
 * 2 MiB blocks: /sys/module/page_reporting), and the host takes reported
 * pages back. The next first touch of such a page faults in the host too, so
 * the same allocation costs ~1.5 µs per 4 KiB page on memory freed moments
 * ago and 5–8 µs on memory that stayed free a while (2026-12-04,
 * docs/real-benchmarks.md "The destination's first touch"). At 5 µs a page a
 * 1 GiB guest's 150 000 data pages are 0.75 s of CPU on a 2-core host: the
 * install ceiling moves with the machine's memory state, run to run.
 *
 * Probe as much as the destination will allocate: the allocator hands out
 * the pages freed last first, so a small probe finds warm pages (32–256 MiB:
 * 1.5–1.7 µs a page) where a 1 GiB one, a minute later, found 7–8 µs.
 */
import { existsSync, readFileSync } from "node:fs";

const PAGE = 4096;

export interface FirstTouch {
  /** Probe size, MiB. */
  mib: number;
  /** One store to each page of a fresh anonymous buffer, ns per page (the kernel's allocation, zeroing and any host fault). */
  ns_per_page: number;
  /** The same stores again, pages present: the loop's own cost, ns per page. */
  retouch_ns_per_page: number;
  /** Free page reporting to a hypervisor, where the kernel has it: its block order and KiB reported since boot. */
  page_reporting: { order: number; reported_kib: number } | null;
}

function reporting(): FirstTouch["page_reporting"] {
  const dir = "/sys/module/page_reporting/parameters";
  if (!existsSync(`${dir}/page_reporting_order`)) return null;
  const read = (f: string): number => {
    try {
      return Number(readFileSync(`${dir}/${f}`, "utf8").trim());
    } catch {
      return NaN; // a kernel without that counter: reported as NaN → null in JSON
    }
  };
  return { order: read("page_reporting_order"), reported_kib: read("reported_kib") };
}

export function firstTouch(mib = 1024): FirstTouch {
  if (!Number.isInteger(mib) || mib < 1 || mib > 4096) throw new RangeError(`firstTouch: 1 … 4096 MiB, got ${mib}`);
  const bytes = mib * 1024 * 1024;
  // A zero-filled ArrayBuffer this large is calloc'd from fresh mmap'd memory: no page is touched until written.
  const b = new Uint8Array(new ArrayBuffer(bytes));
  const pass = (v: number): number => {
    const t0 = process.hrtime.bigint();
    for (let o = 0; o < bytes; o += PAGE) b[o] = v;
    return Number(process.hrtime.bigint() - t0) / (bytes / PAGE);
  };
  const first = pass(1);
  const again = pass(2);
  return { mib, ns_per_page: Math.round(first), retouch_ns_per_page: Math.round(again), page_reporting: reporting() };
}

if (process.argv[1]?.endsWith("first-touch.js")) {
  const mib = Number(process.argv[2] ?? 1024);
  console.log(JSON.stringify(firstTouch(mib)));
}
