/**
 * batchBytes (engine option): a bulk pages message carries at most
 * min(batchPages, batchBytes / pageSize) pages and at least one. 4 KiB pages
 * keep batchPages (256: 1 MiB); a 2 MiB huge page goes alone by default — sixteen of
 * them were 32 MiB messages that a demand fault waited behind on both loops
 * (docs/huge-pages.md, last section). Both back ends see it: the engine sizes
 * the messages, the simulator runs that engine.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { batchPagesFor, DEFAULT_OPTIONS, OptionError, resolveOptions, type Message, type MigrationOptions } from "../src/engine/index.js";
import { simulate } from "../src/sim/simulation.js";
import { parseWorkload } from "../src/workload/parse.js";
import { postcopySourcePastSwitchover } from "./support/postcopy-source.js";

const KIB4 = 4096;
const MIB2 = 2 << 20;

/** A post-copy source past its switchover; then every bulk message it pulls, in order, until none is left. */
function bulkMessageSizes(pageSize: number, pageCount: number, options: Partial<MigrationOptions> = {}): number[] {
  const s = postcopySourcePastSwitchover(options, pageSize, pageCount);
  const sizes: number[] = [];
  for (let m = s.pollTransmit("bulk", 30); m !== null; m = s.pollTransmit("bulk", 30)) {
    if (m.type === "pages") sizes.push((m as Message<number> & { type: "pages" }).pages.length);
  }
  return sizes;
}

describe("batchBytes", () => {
  it("bounds the pages per bulk message by bytes, never below one page", () => {
    expect(DEFAULT_OPTIONS.batchBytes).toBe(MIB2);
    expect(batchPagesFor(DEFAULT_OPTIONS, KIB4)).toBe(256);
    expect(batchPagesFor(DEFAULT_OPTIONS, MIB2)).toBe(1);
    expect(batchPagesFor(DEFAULT_OPTIONS, 1 << 30)).toBe(1);
    expect(batchPagesFor({ batchPages: 16, batchBytes: 32 << 20 }, MIB2)).toBe(16);
    expect(batchPagesFor({ batchPages: 16, batchBytes: 4 << 20 }, MIB2)).toBe(2);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 256 }), fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 12, max: 30 }), (batchPages, batchBytes, log2) => {
        const ps = 2 ** log2;
        const n = batchPagesFor({ batchPages, batchBytes }, ps);
        expect(n).toBeGreaterThanOrEqual(1);
        expect(n).toBeLessThanOrEqual(batchPages);
        if (n > 1) expect(n * ps).toBeLessThanOrEqual(batchBytes);
        // The largest count within both bounds: one more page would break one of them.
        if (n < batchPages) expect((n + 1) * ps).toBeGreaterThan(batchBytes);
      }),
    );
  });

  it("is checked like every option", () => {
    expect(resolveOptions({ batchBytes: 1 }).batchBytes).toBe(1);
    for (const bad of [0, -1, 1.5, Number.NaN]) expect(() => resolveOptions({ batchBytes: bad })).toThrow(OptionError);
    expect(() => resolveOptions({ batchBytes: 0 })).toThrow(/option batchBytes must be an integer ≥ 1/);
  });

  it("makes the engine's post-copy messages one 2 MiB page each, and leaves 4 KiB pages at batchPages", () => {
    expect(bulkMessageSizes(KIB4, 1024)).toEqual([256, 256, 256, 256]);
    expect(bulkMessageSizes(KIB4, 64, { batchPages: 16 })).toEqual([16, 16, 16, 16]);
    expect(bulkMessageSizes(MIB2, 8)).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
    // The old shape, on request: 16 huge pages in one 32 MiB message.
    expect(bulkMessageSizes(MIB2, 32, { batchBytes: 32 << 20 })).toEqual([16, 16]);
  });

  it("reaches the simulator: the same huge-page run in more, smaller messages costs their frame headers", () => {
    const workload = parseWorkload({
      ppsim_workload: 1,
      name: "huge-batch",
      memory: "64MiB",
      vcpus: 1,
      zero_share: 0,
      huge_pages: { size: "2MiB" },
      phases: [{ steps: 200, compute_ns: 3000, write_share: 0.5, pattern: { kind: "uniform" } }],
    });
    const link = { bandwidthBytesPerSec: 125e6, latencyUs: 100 };
    const run = (o: Partial<MigrationOptions>) => simulate({ workload, seed: 1, link, options: { mode: "postcopy", ...o } });
    const alone = run({});
    const sixteen = run({ batchBytes: 32 << 20 });
    for (const r of [alone, sixteen]) expect([r.outcome, r.page_size, r.pages_sent]).toEqual(["completed", MIB2, 32]);
    // Each message's header and count (12 bytes): 32 one-page messages against two of sixteen, faults' replies aside.
    expect(alone.bytes_sent).toBeGreaterThan(sixteen.bytes_sent);
  });
});
