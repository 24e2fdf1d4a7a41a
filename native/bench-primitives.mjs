// Measures the native primitives' costs on this machine:
//   node native/bench-primitives.mjs
// Prints ns per operation. Needs `npm run build:native`.
import { createRequire } from "node:module";
import { openSync, closeSync } from "node:fs";
import os from "node:os";

const require = createRequire(import.meta.url);
const n = require("./build/Release/ppsim_native.node");
const C = n.constants;
const PS = C.PAGE_SIZE;
const ncpu = os.cpus().length;

function region(pages, mode, features = C.UFFD_FEATURE_MISSING_SHMEM) {
  const fd = n.memfdCreate("bench", pages * PS);
  const map = new n.Mapping(fd, pages * PS);
  const uffd = n.uffdCreate();
  n.uffdApi(uffd, features);
  n.uffdRegister(uffd, map.address, pages * PS, mode);
  return { fd, map, uffd, close() { map.unmap(); n.close(uffd); n.close(fd); } };
}

function time(label, ops, f) {
  const t0 = process.hrtime.bigint();
  f();
  const ns = Number(process.hrtime.bigint() - t0) / ops;
  console.log(`${label.padEnd(58)} ${ns.toFixed(0).padStart(8)} ns/op`);
  return ns;
}

const PAGES = 16384; // 64 MiB
console.log(`host: ${ncpu} CPUs, page size ${PS}, ${os.release()}`);

// Kernel-only round trip: toucher thread faults, handler thread UFFDIO_COPYs.
for (const [label, t, h] of [["unpinned", -1, -1], ["same core (both on CPU 0)", 0, 0], ["cross core (CPU 0 -> CPU 1)", 0, 1]]) {
  if ((t >= ncpu) || (h >= ncpu)) continue;
  n.benchFaultRoundTrip(2048, t, h); // warm-up
  const r = n.benchFaultRoundTrip(PAGES, t, h);
  console.log(`${("fault round trip, native threads, " + label).padEnd(58)} ${r.nsPerFault.toFixed(0).padStart(8)} ns/op${r.contentOk ? "" : "  (CONTENT WRONG)"}`);
}

// Through Node: pool thread faults, FaultReader -> TSFN -> JS -> UFFDIO_COPY.
{
  const r = region(4096, C.UFFDIO_REGISTER_MODE_MISSING);
  const page = Buffer.alloc(PS, 7);
  const reader = new n.FaultReader(r.uffd, (err, evs) => {
    for (const e of evs) n.uffdCopy(r.uffd, e.address & ~BigInt(PS - 1), page);
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < 4096; i++) await r.map.touchAsync(i * PS);
  const ns = Number(process.hrtime.bigint() - t0) / 4096;
  console.log(`${"fault round trip via Node (touchAsync + FaultReader + JS)".padEnd(58)} ${ns.toFixed(0).padStart(8)} ns/op`);
  reader.stop();
  r.close();
}

// Install costs without faults.
{
  const r = region(PAGES, C.UFFDIO_REGISTER_MODE_MISSING);
  const page = Buffer.alloc(PS, 1);
  time("UFFDIO_COPY 4 KiB (no waiter), from a Buffer", PAGES, () => {
    for (let i = 0; i < PAGES; i++) n.uffdCopy(r.uffd, r.map.address + BigInt(i * PS), page);
  });
  r.close();
}
{
  const r = region(PAGES, C.UFFDIO_REGISTER_MODE_MISSING);
  time("UFFDIO_ZEROPAGE 4 KiB (no waiter)", PAGES, () => {
    for (let i = 0; i < PAGES; i++) n.uffdZeropage(r.uffd, r.map.address + BigInt(i * PS), PS);
  });
  r.close();
}
{
  const r = region(PAGES, C.UFFDIO_REGISTER_MODE_MISSING);
  const page = Buffer.alloc(64 * PS, 1);
  time("UFFDIO_COPY 256 KiB batch, per 4 KiB page", PAGES, () => {
    for (let i = 0; i < PAGES; i += 64) n.uffdCopy(r.uffd, r.map.address + BigInt(i * PS), page);
  });
  time("pread 4 KiB of a memfd", PAGES, () => {
    for (let i = 0; i < PAGES; i++) n.pread(r.fd, i * PS, PS);
  });
  r.close();
}

// Dirty tracking: async WP + PAGEMAP_SCAN over 64 MiB.
{
  const r = region(PAGES, C.UFFDIO_REGISTER_MODE_WP,
    C.UFFD_FEATURE_WP_ASYNC | C.UFFD_FEATURE_WP_UNPOPULATED | C.UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
  for (let i = 0; i < PAGES; i++) r.map.writeU64(i * PS, 1n);
  n.uffdWriteProtect(r.uffd, r.map.address, PAGES * PS, C.UFFDIO_WRITEPROTECT_MODE_WP);
  const pm = openSync("/proc/self/pagemap", "r");
  const end = r.map.address + BigInt(PAGES * PS);
  const opts = { flags: C.PM_SCAN_WP_MATCHING | C.PM_SCAN_CHECK_WPASYNC, categoryMask: C.PAGE_IS_WRITTEN, returnMask: C.PAGE_IS_WRITTEN };
  time("first write to a write-protected page (async WP)", PAGES, () => {
    for (let i = 0; i < PAGES; i++) r.map.writeU64(i * PS + 8, 2n);
  });
  time("PAGEMAP_SCAN+re-protect, all 16384 pages written, per page", PAGES, () => {
    n.pagemapScan(pm, r.map.address, end, opts);
  });
  time("PAGEMAP_SCAN, nothing written, per page", PAGES, () => {
    n.pagemapScan(pm, r.map.address, end, opts);
  });
  for (let i = 0; i < PAGES; i += 2) r.map.writeU64(i * PS + 8, 3n);
  time("PAGEMAP_SCAN+re-protect, every other page written, per page", PAGES, () => {
    n.pagemapScan(pm, r.map.address, end, opts);
  });
  closeSync(pm);
  r.close();
}

// Installing once the guest runs, the two install modes (native/src/bench_install.cc), 256 MiB each,
// runs of 16 pages (the source's frames), 1 and 2 threads (bulk connections); interleaved, twice.
for (const threads of [1, 2]) {
  for (let rep = 0; rep < 2; rep++) {
    for (const [how, label] of [[0, "memcpy + UFFDIO_COPY (mode copy)"], [1, "pwritev + UFFDIO_CONTINUE (mode continue)"], [2, "memcpy into a mapping + CONTINUE"]]) {
      const r = n.benchInstall(256, 16, threads, how);
      console.log(`${(`install, ${threads} thread${threads > 1 ? "s" : ""}, ${label}`).padEnd(58)} ${r.nsPerPage.toFixed(0).padStart(8)} ns/page`);
    }
  }
}
