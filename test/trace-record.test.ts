/**
 * ppsim record end to end: a tiny program with known accesses
 * (test/fixtures/touch-pages.cc) is compiled, recorded under valgrind's
 * lackey, and its trace must show exactly the pages it is known to touch
 * in its buffer. Needs g++ and valgrind (.ci/run installs both).
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { record } from "../src/record/record.js";
import { loadTrace, summarizeTrace } from "../src/workload/trace-format.js";

const hasValgrind = spawnSync("valgrind", ["--version"]).status === 0;
if (!hasValgrind) console.log("skipping ppsim record: valgrind is not installed (apt-get install valgrind)");

const dir = mkdtempSync(join(tmpdir(), "ppsim-record-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe.skipIf(!hasValgrind)("ppsim record", () => {
  it("records the pages a tiny program is known to write, read and leave alone", async () => {
    const exe = join(dir, "touch-pages");
    execFileSync("g++", ["-O1", "-o", exe, join(import.meta.dirname, "fixtures", "touch-pages.cc")]);
    const out = join(dir, "touch.trace.gz");
    const addrFile = join(dir, "addr");
    const r = await record({ command: [exe, addrFile], out, window: 5000, pageSize: 4096, timeNative: true });
    expect(r.exitCode).toBe(0);

    const base = Number.parseInt(readFileSync(addrFile, "utf8").trim(), 16) / 4096;
    expect(Number.isInteger(base)).toBe(true);
    const t = loadTrace(out);
    expect(t.header.page_size).toBe(4096);
    expect(t.header.window).toEqual({ unit: "instructions", size: 5000 });
    expect(t.header.command).toEqual([exe, addrFile]);
    expect(typeof t.header.native_us).toBe("number");
    expect(t.windows.length).toBe(r.windows);
    expect(t.instructions).toBe(r.instructions);
    expect(t.windows.slice(0, -1).every((w) => w.instructions === 5000)).toBe(true);

    const written = new Set<number>();
    const read = new Set<number>();
    const touched = new Set<number>();
    for (const w of t.windows) {
      for (const p of w.written) written.add(p);
      for (const p of w.read) read.add(p);
      for (const list of [w.written, w.read, w.code]) for (const p of list) touched.add(p);
      // Lists are ascending and read excludes written.
      for (const list of [w.written, w.read, w.code]) expect([...list]).toEqual([...list].sort((a, b) => a - b));
      expect(w.read.some((p) => w.written.includes(p))).toBe(false);
    }
    const inBuf = (set: Set<number>) => [...set].filter((p) => p >= base && p < base + 64).map((p) => p - base).sort((a, b) => a - b);
    const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
    expect(inBuf(written)).toEqual(range(0, 16));
    expect(inBuf(read)).toEqual(range(32, 48));
    expect(inBuf(touched)).toEqual([...range(0, 16), ...range(32, 48)]);

    const s = summarizeTrace(t);
    expect(s.written_pages).toBe(written.size);
    expect(s.footprint_pages).toBe(touched.size);
  });

  it("says so when valgrind cannot run the command", async () => {
    await expect(record({ command: [join(dir, "no-such-program")], out: join(dir, "x.trace.gz"), window: 1000, pageSize: 4096, timeNative: false })).rejects.toThrow(
      /lackey reported no instructions|cannot run/,
    );
  });
});
