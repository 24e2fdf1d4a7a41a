/**
 * A guest on hugetlbfs migrated for real on loopback: 2 MiB pages end to end
 * (the protocol's page, UFFDIO_COPY, PAGEMAP_SCAN's dirty log), bulk pages
 * over the native data plane and faults over the fault lane, verified by
 * the memory hash like every run; the huge-page pool is as it was afterwards.
 * Skips, saying why, without userfaultfd or a 2 MiB pool we may use.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { Mode } from "../src/engine/messages.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { availableHugePages, hugeNeeds, migrationPageSize, reserveHugePages } from "../src/real/huge-reserve.js";
import { closeFd, constants, mapShared, memfdCreate, uffdApi, uffdCopy, uffdCreate, uffdRegister } from "../src/real/native.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { toGuestConfig } from "../src/workload/guest-config.js";
import { parseWorkload } from "../src/workload/parse.js";
import { holdHugePool } from "./support/huge-pool-lock.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const HUGE = 2 << 20;
const POOL = "/sys/kernel/mm/hugepages/hugepages-2048kB";
const MEM = 32 << 20;

function hugeUnavailable(): string | null {
  const uffd = userfaultfdUnavailable();
  if (uffd !== null) return `userfaultfd: ${uffd}`;
  if (!existsSync(POOL)) return "no 2 MiB huge-page pool on this kernel";
  const root = process.getuid?.() === 0;
  if (!root && availableHugePages(HUGE) < (2 * MEM) / HUGE) return "not root, and too few free 2 MiB huge pages";
  return null;
}
const unavailable = hugeUnavailable();
if (unavailable !== null) console.log(`skipping real huge-page migrations: ${unavailable}`);

const workload = (over: object = {}) =>
  parseWorkload({
    ppsim_workload: 1,
    name: "huge-real",
    memory: MEM,
    vcpus: 2,
    zero_share: 0.3,
    // The source measures the guest's unmigrated speed over the warmup (it bounds the wait for the final report).
    warmup_ms: 200,
    huge_pages: { size: "2MiB" },
    phases: [{ steps: 20000, compute_ns: 3000, write_share: 0.3, pattern: { kind: "uniform" } }],
    ...over,
  });

const nr = () => Number(readFileSync(`${POOL}/nr_hugepages`, "utf8"));
const cleanups: (() => Promise<void>)[] = [];
// One huge-page file at a time (support/huge-pool-lock.ts): each checks the pool is back as it was.
let releasePool: (() => void) | null = null;
beforeAll(async () => {
  releasePool = await holdHugePool();
});
afterAll(() => releasePool?.());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("huge-page guests (real back end)", () => {
  it("writes huge_page_size into the guest config, and refuses what the native guest cannot do", () => {
    const config = toGuestConfig(workload(), 1);
    expect(hugeNeeds(config)).toEqual({ size: HUGE, count: MEM / HUGE });
    expect(migrationPageSize(config, 4096)).toBe(HUGE);
    expect(hugeNeeds(toGuestConfig(workload({ huge_pages: undefined }), 1))).toBeNull();
    expect(() => toGuestConfig(workload({ huge_pages: { size: "2MiB", policy: "split" } }), 1)).toThrow(/split policy is the simulator's only/);
    expect(() => toGuestConfig(workload({ memory: "1GiB", huge_pages: { size: "1GiB" } }), 1)).toThrow(/do not fit the real back end's pages messages/);
  });

  it("grows a short pool by the shortfall and shrinks it back; says what to do when it may not", () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-pool-"));
    const pool = (nr: number, free: number, resv: number) => {
      writeFileSync(join(dir, "nr_hugepages"), `${nr}\n`);
      writeFileSync(join(dir, "free_hugepages"), `${free}\n`);
      writeFileSync(join(dir, "resv_hugepages"), `${resv}\n`);
    };
    pool(10, 6, 2); // 4 available
    const r = reserveHugePages(HUGE, 7, dir);
    expect(r.added).toBe(3);
    expect(readFileSync(join(dir, "nr_hugepages"), "utf8")).toBe("13");
    r.mapped();
    r.release();
    r.release();
    expect(readFileSync(join(dir, "nr_hugepages"), "utf8")).toBe("10");
    const enough = reserveHugePages(HUGE, 4, dir);
    expect(enough.added).toBe(0);
    enough.release();
    // A pool we may not write: nr_hugepages a read-only sysfs file (root too gets EACCES there).
    if (!existsSync(`${POOL}/free_hugepages`)) return;
    rmSync(join(dir, "nr_hugepages"));
    symlinkSync(`${POOL}/free_hugepages`, join(dir, "nr_hugepages"));
    expect(() => reserveHugePages(HUGE, 7, dir)).toThrow(/needs 7 free huge pages of 2048 kB and 4 are free; cannot grow the pool .*as root/);
    rmSync(dir, { recursive: true, force: true });
  });

  it("the addon makes a hugetlbfs memfd of a given page size (bench/loopback --huge) and refuses a size that is not one", () => {
    expect(() => memfdCreate("bad-huge", HUGE, 3000)).toThrow(/hugePageSize must be 0 or a power of two >= 4096/);
    expect(() => memfdCreate("bad-huge", HUGE, 2048)).toThrow(/hugePageSize must be 0 or a power of two >= 4096/);
  });

  it.skipIf(unavailable !== null)("a whole 2 MiB page goes into a hugetlbfs memfd's registered mapping by one UFFDIO_COPY", () => {
    const before = nr();
    const pool = reserveHugePages(HUGE, 2);
    const C = constants();
    // hugetlbfs, not shmem: its size must be whole huge pages (ftruncate EINVAL otherwise).
    expect(() => memfdCreate("huge-odd", HUGE + 4096, HUGE)).toThrow(/EINVAL/);
    const fd = memfdCreate("huge-copy", 2 * HUGE, HUGE);
    const map = mapShared(fd, 2 * HUGE);
    const uffd = uffdCreate();
    try {
      uffdApi(uffd, C.UFFD_FEATURE_MISSING_HUGETLBFS);
      uffdRegister(uffd, map.address, 2 * HUGE, C.UFFDIO_REGISTER_MODE_MISSING);
      const src = new Uint8Array(HUGE).map((_, i) => (i * 7) & 0xff);
      expect(uffdCopy(uffd, map.address + BigInt(HUGE), src)).toBe(HUGE);
      expect(Buffer.compare(map.read(HUGE, HUGE), Buffer.from(src))).toBe(0);
    } finally {
      closeFd(uffd);
      map.unmap();
      closeFd(fd);
      pool.release();
    }
    expect(nr()).toBe(before);
  });

  for (const mode of ["postcopy", "precopy"] as Mode[]) {
    it.skipIf(unavailable !== null)(`${mode}: 2 MiB pages end to end, verified, and the pool given back`, async () => {
      const before = nr();
      const log: string[] = [];
      const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
      cleanups.push(() => dest.close());
      // About half a second of guest work after the start: longer than this small migration, so post-copy faults.
      const src = await SourceAgent.start({ workload: workload(), seed: 3, mode, steps: 150_000, peer: { host: "127.0.0.1", port: dest.port }, log: (l) => log.push(`[src] ${l}`) });
      cleanups.push(() => src.close());
      const r = await src.migrate();
      expect([r.outcome, r.verified], `${String(r.reason)}\n${log.join("\n")}`).toEqual(["completed", true]);
      expect(r.page_size).toBe(HUGE);
      expect(r.pages_sent).toBeGreaterThanOrEqual(MEM / HUGE);
      await src.close(); // the lane closes last, and logs what it served
      await dest.close();
      const why = log.join("\n");
      // Demand faults of 2 MiB pages go over the fault lane, and bulk pages over the native data plane (both at both ends).
      expect(log.some((l) => l.includes("fault lane open")), why).toBe(true);
      expect(log.some((l) => l.includes("bulk pages: native data plane")), why).toBe(true);
      expect(log.some((l) => l.includes("bulk connection over the native receiver")), why).toBe(true);
      // The receivers' own count: every page of the guest went in by UFFDIO_COPY on the native bulk path at least once
      // (pre-copy resends some; post-copy's faults may take a few: the lane's), none through JS's installer.
      const viaBulk = log.map((l) => /bulk receiver: (\d+) huge pages installed by UFFDIO_COPY \((\d+) straight from the frame, (\d+) through the staging copy\)/.exec(l)).filter((m) => m !== null);
      // Only when post-copy's faults took every page (16 here: the scheduler's call) has the bulk path nothing to say.
      if (mode !== "postcopy" || r.demand_faults < MEM / HUGE) expect(viaBulk.length, why).toBeGreaterThan(0);
      const bulkPages = viaBulk.reduce((a, m) => a + Number(m[1]), 0);
      expect(bulkPages + (mode === "postcopy" ? r.demand_faults : 0), why).toBeGreaterThanOrEqual(MEM / HUGE);
      if (mode === "postcopy") {
        const served = log.map((l) => /fault lane: (\d+) requests, (\d+) served/.exec(l)).find((m) => m !== null);
        expect(served, why).toBeDefined();
        // How many faults beat the background is the scheduler's; that the lane answered is not.
        expect(r.demand_faults === 0 || Number(served![2]) > 0, why).toBe(true);
      }
      // Both guests have exited: every page this run added to the pool is back.
      const deadline = Date.now() + 5000;
      while (nr() !== before && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
      expect(nr()).toBe(before);
    });
  }
});
