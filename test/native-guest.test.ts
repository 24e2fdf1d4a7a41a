/**
 * ppsim-guest end to end: determinism of its final memory, and a mini
 * migration without network — a destination guest receives every page by
 * UFFDIO_COPY (or write + UFFDIO_CONTINUE) from a paused source's memfd,
 * resumes from the source's vCPU state, and ends with the memory hash of an
 * unmigrated run. Needs `npm run build:native`. Pass/fail never depends on
 * timing: waits poll progress, and results depend only on seed and steps.
 */
import { readdirSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GuestProcess } from "../src/real/guest-process.js";
import {
  closeFd,
  constants,
  errnoCode,
  pread,
  pwrite,
  scanWrittenAndProtect,
  startFaultReader,
  uffdContinue,
  uffdCopy,
  uffdWake,
  uffdZeropage,
} from "../src/real/native.js";

const PS = constants().PAGE_SIZE;
const PAGES = 1024; // 4 MiB
const STEPS = 40_000;

function config(seed: number): string {
  const phase = (f: Record<string, string | number>): string => {
    const all = {
      steps: 1000,
      compute_ns: 200,
      write_share: 0.5,
      pattern: "uniform",
      region_offset: 0,
      region_size: 1,
      stride: 1,
      hot_share: 0.1,
      hot_access: 0.9,
      exponent: 1.1,
      ...f,
    };
    return "phase " + Object.entries(all).map(([k, v]) => `${k}=${v}`).join(" ");
  };
  return [
    `mem_bytes ${PAGES * PS}`,
    `page_size ${PS}`,
    "vcpus 3",
    `seed ${seed}`,
    "zero_share 0.3",
    phase({ steps: 3000, pattern: "uniform", write_share: 0.6 }),
    phase({ steps: 2000, pattern: "sequential", stride: 3, write_share: 0.8, compute_ns: 0 }),
    phase({ steps: 2500, pattern: "hotcold", region_offset: 0.25, region_size: 0.5, hot_share: 0.2, hot_access: 0.8 }),
    phase({ steps: 2500, pattern: "zipf", exponent: 1.2, write_share: 0.3 }),
    phase({ steps: 500, pattern: "uniform", region_offset: 0.9, region_size: 0.001 }), // narrower than vcpus
  ].join("\n") + "\n";
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * RUN answers once the threads are started, not once each has run: on a loaded host a vCPU may not
 * have had its first slice yet (no tid, nice not yet lowered). It lowers its nice before its first
 * step, so this waits for every vCPU's first step and returns their tids.
 */
async function vcpuTidsOnceStepped(g: GuestProcess): Promise<number[]> {
  let p = await g.progress();
  while (p.vcpus.some((v) => v.steps === 0 && !v.finished)) {
    await sleep(5);
    p = await g.progress();
  }
  return p.vcpus.map((v) => v.tid);
}

/** /proc/PID/task/TID/stat: field 19 is the nice value (after the parenthesised name). */
function threadNice(pid: number, tid: number | string): number {
  return Number(readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").split(") ")[1].split(" ")[16]);
}

async function waitFinished(g: GuestProcess): Promise<void> {
  for (;;) {
    const p = await g.progress();
    if (p.vcpus.every((v) => v.finished)) return;
    await sleep(5);
  }
}

/** An unmigrated run to STEPS: its final hash. */
async function referenceHash(seed: number): Promise<string> {
  const g = await GuestProcess.spawn({ role: "source", config: config(seed), steps: STEPS });
  try {
    await g.run();
    await waitFinished(g);
    const p = await g.progress();
    expect(p.vcpus.map((v) => v.steps)).toEqual([STEPS, STEPS, STEPS]);
    return await g.hash();
  } finally {
    await g.quit();
  }
}

describe("ppsim-guest", () => {
  it("ends with the same memory hash for the same seed and steps", async () => {
    const a = await referenceHash(7);
    const b = await referenceHash(7);
    const c = await referenceHash(8);
    expect(a).toMatch(/^[0-9a-f]{16}$/);
    expect(b).toBe(a);
    expect(c).not.toBe(a);
  });

  it("hashes its initial memory identically before running", async () => {
    const g1 = await GuestProcess.spawn({ role: "source", config: config(3) });
    const g2 = await GuestProcess.spawn({ role: "source", config: config(3) });
    try {
      expect(await g1.hash()).toBe(await g2.hash());
      expect(g1.layout).toMatchObject({ memBytes: PAGES * PS, pageSize: PS, vcpus: 3, role: "source" });
      // Zero pages (SPEC.md) are holes: pread returns zeros; others are not zero.
      const zero = Buffer.alloc(PS);
      let zeros = 0;
      for (let p = 0; p < PAGES; p++) if (pread(g1.memfd, p * PS, PS).equals(zero)) zeros++;
      expect(zeros / PAGES).toBeGreaterThan(0.2);
      expect(zeros / PAGES).toBeLessThan(0.4);
    } finally {
      await g1.quit();
      await g2.quit();
    }
  });

  it("refuses a bad config with a clear message and a non-zero exit", async () => {
    const bad = config(1).replace("vcpus 3", "vcpus 0");
    await expect(GuestProcess.spawn({ role: "source", config: bad })).rejects.toThrow(/exited with code 2.*vcpus must be in 1\.\.64/s);
    const bad2 = config(1).replace("pattern=zipf", "pattern=fractal");
    await expect(GuestProcess.spawn({ role: "source", config: bad2 })).rejects.toThrow(/pattern must be/);
  });

  it("rejects pending calls with the guest's stderr when it dies", async () => {
    const g = await GuestProcess.spawn({ role: "source", config: config(1) });
    process.kill(g.layout.pid, "SIGKILL");
    await expect(g.progress()).rejects.toThrow(/exited with signal SIGKILL/);
    g.close();
  });

  it("pauses mid-run and resumes to the same final memory", async () => {
    const expected = await referenceHash(5);
    const g = await GuestProcess.spawn({ role: "source", config: config(5), steps: STEPS });
    try {
      await g.run();
      await g.throttle(0.5);
      const state = await g.pause();
      const p = await g.progress();
      expect(p.state).toBe("paused");
      // The state's step counters are the progress counters.
      const b = Buffer.from(state);
      expect(p.vcpus.map((_, v) => Number(b.readBigUInt64LE(24 + v * 48)))).toEqual(p.vcpus.map((v) => v.steps));
      await expect(g.resume(state)).rejects.toThrow(/only allowed before the vCPUs start/);
      await g.throttle(0);
      await g.resume();
      await waitFinished(g);
      expect(await g.hash()).toBe(expected);
    } finally {
      await g.quit();
    }
  });

  for (const installPath of ["copy", "write+continue"] as const) {
    it(`migrates (${installPath}): destination ends with the unmigrated hash`, async () => {
      const seed = 11;
      const expected = await referenceHash(seed);

      // The source stops at exactly half the steps, so the destination runs
      // the other half whatever the timing: the migration always matters.
      const src = await GuestProcess.spawn({ role: "source", config: config(seed), steps: STEPS / 2 });
      const dst = await GuestProcess.spawn({
        role: "destination",
        config: config(seed),
        steps: STEPS,
        minor: installPath === "write+continue",
      });
      const pm = src.openPagemap();
      try {
        expect(src.uffd).toBeGreaterThanOrEqual(0);
        expect(dst.uffd).toBeGreaterThanOrEqual(0);
        const base = src.layout.base;
        const end = base + BigInt(src.layout.memBytes);
        await src.run();
        await waitFinished(src);
        // The dirty log sees writes (async WP + PAGEMAP_SCAN on the guest).
        const dirty = scanWrittenAndProtect(pm, base, end);
        expect(dirty.length).toBeGreaterThan(0);
        for (const r of dirty) {
          expect(r.start).toBeGreaterThanOrEqual(base);
          expect(r.end).toBeLessThanOrEqual(end);
        }
        const state = await src.pause();
        expect(state.length).toBe(24 + 3 * 48);
        const steps = Buffer.from(state);
        for (let v = 0; v < 3; v++) expect(steps.readBigUInt64LE(24 + v * 48)).toBe(BigInt(STEPS / 2));

        // Pages are read from the source's memfd with pread (no allocation).
        const zero = Buffer.alloc(PS);
        const installed = new Set<number>();
        const dbase = dst.layout.base;
        const minorPath = installPath === "write+continue";
        const install = (p: number): void => {
          if (installed.has(p)) return;
          installed.add(p);
          const data = pread(src.memfd, p * PS, PS);
          const addr = dbase + BigInt(p * PS);
          if (data.equals(zero)) uffdZeropage(dst.uffd, addr, PS);
          else if (minorPath) {
            // Safe only because MINOR is registered: the guest maps the page
            // through a minor fault we answer once the write is complete.
            pwrite(dst.memfd, p * PS, data);
            uffdContinue(dst.uffd, addr, PS);
          } else uffdCopy(dst.uffd, addr, data);
        };
        // "Pre-copy": a third of the pages before the destination runs.
        for (let p = 0; p < PAGES; p += 3) install(p);
        let faults = 0;
        let readerError: Error | undefined;
        const reader = startFaultReader(
          dst.uffd,
          (events) => {
            for (const e of events) {
              faults++;
              const p = Number((e.address - dbase) / BigInt(PS));
              if (installed.has(p)) {
                // Raced with a background install that already woke it — or
                // a minor fault on a page present in the page cache.
                try {
                  if (minorPath) uffdContinue(dst.uffd, dbase + BigInt(p * PS), PS);
                  else uffdWake(dst.uffd, dbase + BigInt(p * PS), PS);
                } catch (err) {
                  if (errnoCode(err) !== "EEXIST") throw err;
                }
              } else install(p);
            }
          },
          (err) => {
            readerError = err;
          },
        );
        try {
          await dst.resume(state);
          // Background push of the rest, a few pages per turn of the event loop.
          for (let p = 0; p < PAGES; p++) {
            install(p);
            if (p % 16 === 0) await sleep(0);
          }
          await waitFinished(dst);
        } finally {
          reader.stop();
        }
        expect(readerError).toBeUndefined();
        expect(installed.size).toBe(PAGES);
        expect(faults).toBeGreaterThanOrEqual(0); // how many depends on timing
        const p = await dst.progress();
        expect(p.vcpus.map((v) => v.steps)).toEqual([STEPS, STEPS, STEPS]);
        expect(await dst.hash()).toBe(expected);
      } finally {
        closeFd(pm);
        await src.quit();
        await dst.quit();
      }
    });
  }

  it("its vCPU threads lower their own priority as they start; the control thread keeps its own", async () => {
    const { vcpuNice } = await import("../src/real/guest-spawn.js");
    const g = await GuestProcess.spawn({ role: "source", config: config(5) });
    try {
      await g.run();
      const tids = new Set(await vcpuTidsOnceStepped(g));
      expect(tids.size).toBe(3);
      for (const t of readdirSync(`/proc/${g.layout.pid}/task`)) expect(threadNice(g.layout.pid, t), `thread ${t}`).toBe(tids.has(Number(t)) ? vcpuNice() : 0);
    } finally {
      await g.quit();
    }
  });

  // Raising a thread's nice back to 0 needs CAP_SYS_NICE: as root (CI) the guest does it; otherwise it stays low.
  it.skipIf(process.getuid?.() !== 0)("a PAUSE raises its vCPU threads to nice 0 until RESUME lowers them again", async () => {
    const { vcpuNice } = await import("../src/real/guest-spawn.js");
    const g = await GuestProcess.spawn({ role: "source", config: config(6) });
    try {
      await g.run();
      const tids = await vcpuTidsOnceStepped(g);
      const nice = (tid: number): number => threadNice(g.layout.pid, tid);
      expect(tids.map(nice)).toEqual(tids.map(() => vcpuNice()));
      await g.pause();
      expect(tids.map(nice)).toEqual([0, 0, 0]);
      await g.resume();
      // RESUME lowers them before it wakes them, and replies after: no wait needed.
      expect(tids.map(nice)).toEqual(tids.map(() => vcpuNice()));
      await g.pause(); // again, after a resume
      expect(tids.map(nice)).toEqual([0, 0, 0]);
    } finally {
      await g.quit();
    }
  });
});
