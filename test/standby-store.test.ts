/**
 * The standby copy's files (src/real/standby-store.ts): what the reader
 * accepts is exactly what is current and intact — written after the
 * switchover mark, or listed by it — and a torn or stale block, a page never
 * written, a block moved to another page's offset, or a copy without a mark
 * is refused, page by page; its small files are read bounded.
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Bitmap } from "../src/engine/bitmap.js";
import { createCopy, RECORD_BYTES, StandbyReader } from "../src/real/standby-store.js";
import { CopyFiles } from "../src/real/standby-write.js";

const PS = 4096;
const PAGES = 40;
const SESSION = "ab".repeat(16);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** Page p's content in "version" v (all zeros for v = 0). */
const content = (p: number, v: number) => Buffer.alloc(PS, v === 0 ? 0 : (p * 7 + v) & 0xff || 1);

async function readAll(dir: string, pages: number[]) {
  const r = await StandbyReader.open(dir, SESSION, { pageSize: PS, pageCount: PAGES });
  const got = new Map<number, Uint8Array | null>();
  const res = await r.read(Uint32Array.from(pages), (batch) => batch.pages.forEach((page, i) => got.set(page, batch.data[i])));
  await r.close();
  return { got, bad: new Map(res.bad.map((b) => [b.page, b.why])) };
}

describe("standby copy files", () => {
  it("accepts pages current at the mark or written after it, and refuses unwritten, stale and torn ones", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-standby-"));
    dirs.push(dir);
    const version = new Map<number, number>();
    const w = CopyFiles.open(await createCopy(dir, SESSION, { pageSize: PS, pageCount: PAGES }), { pageSize: PS, pageCount: PAGES }, false);
    const write = (seq: number, pages: number[], v: number) =>
      w.writePages(seq, Uint32Array.from(pages), (first, count, into) => {
        for (let i = 0; i < count; i++) {
          const vv = pages.includes(first + i) ? v : 0;
          content(first + i, vv).copy(into, i * PS);
          version.set(first + i, vv);
        }
      });
    write(0, [0, 1, 2, 3, 4, 5, 6, 7], 1);
    write(1, [8, 9, 10], 2);
    // Before any mark nothing is known current.
    expect((await readAll(dir, [0])).bad.get(0)).toBe("stale");
    // The mark: pages 0..5 and 8 current; 6, 7 (dirtied since) and 9, 10 not.
    const valid = new Bitmap(PAGES);
    for (const p of [0, 1, 2, 3, 4, 5, 8]) valid.set(p);
    w.writeMark(2, valid.toBytes());
    write(3, [6, 9, 20, 21, 22], 3);
    write(4, [30], 0); // a zero page: its record alone
    w.close();
    // Tear page 1's block (as a crash between data and record would).
    const fd = openSync(join(dir, SESSION, "memory.img"), "r+");
    writeSync(fd, Buffer.from([0x55]), 0, 1, 1 * PS + 100);
    closeSync(fd);
    // Page 21's block and record land at page 22's offsets (a misplaced write): same seq, same flags, wrong page.
    const img = openSync(join(dir, SESSION, "memory.img"), "r+");
    const rec = openSync(join(dir, SESSION, "records"), "r+");
    const b = Buffer.alloc(PS);
    readSync(img, b, 0, PS, 21 * PS);
    writeSync(img, b, 0, PS, 22 * PS);
    const r = Buffer.alloc(RECORD_BYTES);
    readSync(rec, r, 0, RECORD_BYTES, 21 * RECORD_BYTES);
    writeSync(rec, r, 0, RECORD_BYTES, 22 * RECORD_BYTES);
    closeSync(img);
    closeSync(rec);

    const { got, bad } = await readAll(dir, [0, 1, 6, 7, 8, 9, 10, 20, 21, 22, 30, 35]);
    expect([...got.keys()].sort((a, b) => a - b)).toEqual([0, 6, 8, 9, 20, 21, 30]);
    for (const [p, data] of got) {
      if (p === 30) expect(data).toBe(null);
      else expect(Buffer.from(data!).equals(content(p, version.get(p)!))).toBe(true);
    }
    expect(Object.fromEntries(bad)).toEqual({ 1: "checksum", 7: "stale", 10: "stale", 22: "checksum", 35: "unwritten" });
  });

  it("refuses an oversized or garbled layout or mark without reading it whole", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-standby-"));
    dirs.push(dir);
    const folder = await createCopy(dir, SESSION, { pageSize: PS, pageCount: PAGES });
    const layout = { pageSize: PS, pageCount: PAGES };
    writeFileSync(join(folder, "mark"), Buffer.alloc(1 << 20));
    await expect(StandbyReader.open(dir, SESSION, layout)).rejects.toThrow(/more than the \d+ it may hold/);
    writeFileSync(join(folder, "mark"), Buffer.alloc(12 + PAGES / 8));
    await expect(StandbyReader.open(dir, SESSION, layout)).rejects.toThrow(/bad switchover mark/);
    writeFileSync(join(folder, "layout.json"), "null");
    await expect(StandbyReader.open(dir, SESSION, layout)).rejects.toThrow(/no readable layout/);
    writeFileSync(join(folder, "layout.json"), JSON.stringify({ ppsim_standby: 1, page_size: PS, page_count: PAGES }));
    await expect(StandbyReader.open(dir, SESSION, layout)).rejects.toThrow(/format 1.*want format 2/);
  });

  it("refuses a copy of another layout", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-standby-"));
    dirs.push(dir);
    await createCopy(dir, SESSION, { pageSize: PS, pageCount: PAGES });
    await expect(StandbyReader.open(dir, SESSION, { pageSize: PS, pageCount: PAGES + 1 })).rejects.toThrow(/not of this guest/);
    await expect(StandbyReader.open(dir, "../etc", { pageSize: PS, pageCount: PAGES })).rejects.toThrow(/bad session id/);
  });
});
