/**
 * The stress bench's post-mortem tools (src/real/memory-dump.ts): a memfd's
 * RAM dumped as a sparse file of its non-zero pages, and compared page by
 * page with another memfd — a migration that did not verify then says which
 * pages differ and how. Memfds only; nothing here depends on timing.
 */
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { diffPages, dumpMemory } from "../src/real/memory-dump.js";
import { closeFd, memfdCreate, pwrite } from "../src/real/native.js";

const PS = 4096;
const PAGES = 64;
const fds: number[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const fd of fds.splice(0)) closeFd(fd);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function memfd(): number {
  const fd = memfdCreate("dump-test", PAGES * PS);
  fds.push(fd);
  return fd;
}

function page(fill: number): Buffer {
  const b = Buffer.alloc(PS);
  for (let w = 0; w < PS / 8; w++) b.writeBigUInt64LE(BigInt(fill * 1000 + w + 1), w * 8);
  return b;
}

describe("memory dump and page diff", () => {
  it("dumps only non-zero pages, and finds exactly the pages that differ", () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-dump-"));
    dirs.push(dir);
    const want = memfd();
    const got = memfd();
    for (const p of [0, 1, 5, 40, 63]) {
      pwrite(want, p * PS, page(p));
      pwrite(got, p * PS, page(p));
    }
    // An explicit zero page (data to SEEK_DATA) at both: not dumped, no difference.
    pwrite(want, 9 * PS, Buffer.alloc(PS));
    pwrite(got, 9 * PS, Buffer.alloc(PS));
    // The differences: one word changed, a page missing (zeros), a page that should be zero.
    const w = page(5);
    w.writeBigUInt64LE(0xdeadn, 8 * 7);
    pwrite(got, 5 * PS, w);
    pwrite(got, 40 * PS, Buffer.alloc(PS));
    pwrite(got, 20 * PS, page(20));
    const path = join(dir, "got.mem");
    expect(dumpMemory(got, PAGES * PS, PS, path)).toBe(5); // 0, 1, 5, 20, 63
    expect(statSync(path).size).toBe(PAGES * PS);
    expect(diffPages(got, path, PAGES * PS, PS).count).toBe(0);
    const d = diffPages(want, path, PAGES * PS, PS);
    expect(d.count).toBe(3);
    expect(d.pages.map((p) => p.page)).toEqual([5, 20, 40]);
    expect(d.pages[0]).toMatchObject({ words: 1, expectedZero: false, gotZero: false, sample: [[7, (5 * 1000 + 8).toString(16), "dead"]] });
    expect(d.pages[1]).toMatchObject({ words: PS / 8, expectedZero: true, gotZero: false });
    expect(d.pages[2]).toMatchObject({ words: PS / 8, expectedZero: false, gotZero: true });
    expect(diffPages(want, path, PAGES * PS, PS, 1).pages).toHaveLength(1);
  });
});
