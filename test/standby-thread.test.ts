/**
 * The source's copy thread (src/real/standby-source.ts → standby-worker.ts):
 * operations handed over in the engine's order come back done in that
 * order, the pages read from the guest's memory file land verified in the
 * copy, the thread lowers its own priority, and once stopped nothing queued
 * is written.
 */
import { closeSync, ftruncateSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Bitmap } from "../src/engine/bitmap.js";
import { COPY_THREAD_NICE, SourceStandby } from "../src/real/standby-source.js";
import { StandbyReader } from "../src/real/standby-store.js";

const PS = 4096;
const PAGES = 600;
const SESSION = "cd".repeat(16);
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/** The nice value of each thread of this process (field 19 of /proc/self/task/TID/stat). */
function threadNices(): number[] {
  return readdirSync("/proc/self/task").map((t) => {
    const stat = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  });
}

const content = (p: number) => Buffer.alloc(PS, (p % 251) + 1);

describe("standby copy thread", () => {
  it("writes what it is handed, in order, verifiably, at a lower priority", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-standby-"));
    dirs.push(dir);
    // A plain file stands in for the guest's memfd: even pages hold data, odd ones are holes (zeros).
    const memPath = join(dir, "guest.mem");
    const mem = openSync(memPath, "w+");
    ftruncateSync(mem, PAGES * PS);
    for (let p = 0; p < PAGES; p += 2) writeSync(mem, content(p), 0, PS, p * PS);
    const log: string[] = [];
    expect(threadNices()).not.toContain(COPY_THREAD_NICE);
    const sb = await SourceStandby.start(dir, SESSION, mem, { pageSize: PS, pageCount: PAGES }, false, (l) => log.push(l));
    const done: number[] = [];
    let all!: () => void;
    const finished = new Promise<void>((r) => (all = r));
    const failed = setInterval(() => sb.failure !== null && all(), 10);
    sb.onWritten = (seq) => {
      done.push(seq);
      if (done.length === 4) all();
    };
    const pages = (from: number, to: number) => Uint32Array.from({ length: to - from }, (_, i) => from + i);
    sb.push({ kind: "pages", seq: 0, pages: pages(0, 256) });
    sb.push({ kind: "pages", seq: 1, pages: pages(256, 300) });
    sb.push({ kind: "mark", seq: 2, valid: Bitmap.full(PAGES).toBytes() });
    sb.push({ kind: "pages", seq: 3, pages: pages(300, PAGES) });
    expect(sb.hasRoom).toBe(false); // four in flight: the engine waits
    await finished;
    clearInterval(failed);
    expect(sb.failure).toBe(null);
    expect(done).toEqual([0, 1, 2, 3]);
    expect(sb.hasRoom).toBe(true);
    expect(log.join("\n")).not.toMatch(/could not lower/);
    expect(threadNices()).toContain(COPY_THREAD_NICE);
    await sb.stop();
    sb.push({ kind: "pages", seq: 4, pages: pages(0, 1) }); // after stop: dropped, never counted
    expect(sb.failure).toBe(null);
    expect(sb.bytesWritten).toBe((PAGES / 2) * PS + PAGES * 16 + 12 + PAGES / 8);
    closeSync(mem);

    const r = await StandbyReader.open(dir, SESSION, { pageSize: PS, pageCount: PAGES });
    const got = new Map<number, Uint8Array | null>();
    const res = await r.read(pages(0, PAGES), (batch) => batch.pages.forEach((page, i) => got.set(page, batch.data[i])));
    await r.close();
    expect(res.bad).toEqual([]);
    for (let p = 0; p < PAGES; p++) {
      if (p % 2 === 1) expect(got.get(p)).toBe(null);
      else expect(Buffer.from(got.get(p)!).equals(content(p))).toBe(true);
    }
  });

  it("a failing write stops the copy and says why", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ppsim-standby-"));
    dirs.push(dir);
    const mem = openSync(join(dir, "guest.mem"), "w+"); // empty: reading any page fails
    const log: string[] = [];
    const sb = await SourceStandby.start(dir, SESSION, mem, { pageSize: PS, pageCount: PAGES }, false, (l) => log.push(l));
    sb.push({ kind: "pages", seq: 0, pages: Uint32Array.of(5) });
    for (let i = 0; i < 200 && sb.failure === null; i++) await new Promise((r) => setTimeout(r, 10));
    expect(sb.failure).toMatch(/standby copy .* failed: reading guest pages 5\.\.5: got 0 of 4096 bytes/);
    expect(sb.hasRoom).toBe(false);
    await sb.stop();
    closeSync(mem);
  });
});
