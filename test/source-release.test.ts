/**
 * The source's release log (src/real/source-release.ts): pages the
 * destination installed are punched out of the source's memfd by a thread of
 * its own (or, PPSIM_PUNCH=loop, a slice per event-loop turn), so that a
 * report's worth of pages never holds up the loop (and the demand replies
 * behind it); none after stop().
 */
import { fstatSync } from "node:fs";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { closeFd, constants, memfdCreate, memfdDataPages, pwrite } from "../src/real/native.js";
import { pageRuns, ReleaseLog } from "../src/real/source-release.js";

const PS = constants().PAGE_SIZE;
const PAGES = 4096;
const fds: number[] = [];
afterEach(() => {
  while (fds.length > 0) closeFd(fds.pop() as number);
});

function fullMemfd(): number {
  const fd = memfdCreate("release", PAGES * PS);
  fds.push(fd);
  const b = Buffer.alloc(64 * PS, 1);
  for (let p = 0; p < PAGES; p += 64) pwrite(fd, p * PS, b);
  return fd;
}
const allocatedPages = (fd: number) => (fstatSync(fd).blocks * 512) / PS;
const turn = () => new Promise((r) => setImmediate(r));

/** The reference: every page once, sorted, cut into runs of consecutive pages. */
function runsByPages(frames: Uint32Array[]): number[] {
  const pages = [...new Set(frames.flatMap((f) => Array.from(f)))].sort((a, b) => a - b);
  const out: number[] = [];
  for (const p of pages) {
    const n = out.length;
    if (n > 0 && out[n - 2] + out[n - 1] === p) out[n - 1]++;
    else out.push(p, 1);
  }
  return out;
}

describe("pageRuns", () => {
  it("equals the page-by-page runs of the frames' pages, whatever their order, overlaps or repeats", () => {
    const frame = fc.oneof(
      fc.tuple(fc.integer({ min: 0, max: 500 }), fc.integer({ min: 1, max: 40 })).map(([a, n]) => Uint32Array.from({ length: n }, (_, i) => a + i)),
      fc.array(fc.integer({ min: 0, max: 500 }), { maxLength: 20 }).map((xs) => Uint32Array.from(xs)),
    );
    fc.assert(fc.property(fc.array(frame, { maxLength: 30 }), (frames) => {
      expect(Array.from(pageRuns(frames))).toEqual(runsByPages(frames));
    }));
  });

  it("takes frames already in page order (the background's usual case, which skips the sort) to the same runs", () => {
    // Ascending runs with gaps or touching ends: firsts come sorted, so pageRuns does not sort.
    const gaps = fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 40 })), { maxLength: 30 });
    fc.assert(fc.property(gaps, (gs) => {
      let at = 0;
      const frames = gs.map(([gap, n]) => {
        const f = Uint32Array.from({ length: n }, (_, i) => at + gap + i);
        at += gap + n;
        return f;
      });
      expect(Array.from(pageRuns(frames))).toEqual(runsByPages(frames));
    }));
  });
});

describe("ReleaseLog", () => {
  it("punches what the destination installed, a slice per turn, and nothing it did not", async () => {
    const fd = fullMemfd();
    const log = new ReleaseLog(fd, PS, undefined, "loop");
    // Two frames on stream 0 (pages 0…2999 and 3000…3499), one on stream 1 (3500…3599); the destination installed the first two.
    const range = (a: number, b: number) => Uint32Array.from({ length: b - a }, (_, i) => a + i);
    log.sent(0, 0, 1000, range(0, 3000));
    log.sent(0, 0, 2000, range(3000, 3500));
    log.sent(0, 1, 500, range(3500, 3600));
    const done = log.taken(0, [2000, 499], 0);
    expect(done.reduce((a, f) => a + f.length, 0)).toBe(3500);
    // Nothing punched inside the call: the loop is back at once.
    expect(allocatedPages(fd)).toBe(PAGES);
    await turn();
    const afterOne = allocatedPages(fd);
    expect(afterOne).toBeLessThan(PAGES);
    expect(afterOne).toBeGreaterThan(PAGES - 3500);
    for (let i = 0; i < 20; i++) await turn();
    expect(allocatedPages(fd)).toBe(PAGES - 3500);
    expect(log.punchedPages).toBe(3500);
  });

  it("punches nothing after stop(), whatever was queued", async () => {
    const fd = fullMemfd();
    const log = new ReleaseLog(fd, PS, undefined, "loop");
    log.sent(0, 0, 100, Uint32Array.from({ length: 4000 }, (_, i) => i));
    log.taken(0, [100], 0);
    log.stop();
    for (let i = 0; i < 20; i++) await turn();
    expect(allocatedPages(fd)).toBe(PAGES);
    expect(log.punchedPages).toBe(0);
  });

  it("on its thread (the default), punches what the destination installed and nothing it did not, in pieces the loop never waits for", async () => {
    const fd = fullMemfd();
    const log = new ReleaseLog(fd, PS, undefined, "thread");
    const range = (a: number, b: number) => Uint32Array.from({ length: b - a }, (_, i) => a + i);
    // Out of order and with a gap: the thread is given sorted runs (0…999, 2000…3499).
    log.sent(0, 0, 1000, range(2000, 3500));
    log.sent(0, 0, 2000, range(0, 1000));
    log.sent(0, 1, 500, range(3500, 3600));
    log.taken(0, [2000, 499], 0);
    await log.settled();
    expect(allocatedPages(fd)).toBe(PAGES - 2500);
    expect(log.punchedPages).toBe(2500);
    const pages = new Uint8Array(PAGES);
    for (let p = 0; p < PAGES; p++) pages[p] = p < 1000 || (p >= 2000 && p < 3500) ? 0 : 1;
    expect(Array.from(memfdDataPages(fd, 0, PAGES, PS))).toEqual(Array.from(pages));
  });

  it("on its thread, stop() waits for the piece in progress and punches nothing after it", async () => {
    const fd = fullMemfd();
    const log = new ReleaseLog(fd, PS, undefined, "thread");
    log.sent(0, 0, 100, Uint32Array.from({ length: 4000 }, (_, i) => i));
    log.taken(0, [100], 0);
    log.stop();
    const atStop = log.punchedPages;
    expect(allocatedPages(fd)).toBe(PAGES - atStop);
    await new Promise((r) => setTimeout(r, 20));
    expect(allocatedPages(fd)).toBe(PAGES - atStop);
    expect(log.punchedPages).toBe(atStop);
  });
});
