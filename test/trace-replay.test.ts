/**
 * Trace phases (schema 2): the trace file's errors, the dense remap and the
 * copy layout, determinism and save/restore of the replay, the ownership
 * rule, verified simulated migrations, and the native guest replaying the
 * very accesses the simulator replays (equal memory hashes).
 */
import fc from "fast-check";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, it } from "vitest";
import { GuestProcess } from "../src/real/guest-process.js";
import { simulate } from "../src/sim/simulation.js";
import { AccessGenerator, compilePhases, GENERATOR_STATE_BYTES } from "../src/workload/generator.js";
import { toGuestConfig } from "../src/workload/guest-config.js";
import { parseWorkload, WorkloadError } from "../src/workload/parse.js";
import { loadTrace, parseTraceText } from "../src/workload/trace-format.js";
import type { Workload } from "../src/workload/types.js";
import { expectedGuestHash } from "./support/guest-image.js";
import { sampleWindows, traceText, writeTrace } from "./support/traces.js";

const dir = mkdtempSync(join(tmpdir(), "ppsim-trace-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const sample = writeTrace(join(dir, "sample.trace.gz"), sampleWindows(), { native_us: 2 });
const FOOTPRINT = 11;

function workload(phase: Record<string, unknown>, extra: Record<string, unknown> = {}): Workload {
  return parseWorkload({ ppsim_workload: 2, name: "t", memory: 256 * 4096, vcpus: 2, phases: [{ kind: "trace", trace: "sample.trace.gz", ...phase }], ...extra }, "t.json", dir);
}

function draw(w: Workload, v: number, n: number): { page: number; write: boolean; ns: number }[] {
  const g = new AccessGenerator(compilePhases(w), w.vcpus, v, 1);
  return Array.from({ length: n }, () => {
    const ns = g.computeNs;
    const page = g.next();
    return { page, write: g.isWrite, ns };
  });
}

describe("trace files", () => {
  const errors: [string, string, RegExp][] = [
    ["another version", traceText(sampleWindows()).replace("ppsim-trace 1", "ppsim-trace 2"), /^x:1: trace format version "2"; this build reads version 1 only/],
    ["not a trace", "hello\n", /^x:1: not a ppsim trace/],
    ["truncated", traceText(sampleWindows()).split("\n").slice(0, 4).join("\n") + "\n", /^x:5: truncated: no end line after 2 windows/],
    ["a repeated page", traceText(sampleWindows()).replace("1000\t", "1000\t5 0 "), /^x:3: the read list repeats page 5/],
    ["a bad count", traceText(sampleWindows()).replace("end 4", "end 5"), /^x:7: the end line counts 5 windows, the file has 4/],
    ["a short line", traceText(sampleWindows()).replace("400\t", "400 "), /^x:6: a window line has 4 tab-separated fields/],
    ["a bad header", traceText(sampleWindows()).replace('"unit":"instructions"', '"unit":"ms"'), /^x:2: header\.window must be/],
  ];
  it.each(errors)("%s is refused, naming the line", (_, text, msg) => {
    expect(() => parseTraceText(text, "x")).toThrow(msg);
  });

  it("round-trips, and a truncated gzip file is refused", () => {
    const t = loadTrace(sample);
    expect(t.windows.map((w) => w.written)).toEqual(sampleWindows().map((w) => w.written));
    expect(t.instructions).toBe(3400);
    const cut = join(dir, "cut.trace.gz");
    writeFileSync(cut, gzipSync(traceText(sampleWindows())).subarray(0, 40));
    expect(() => loadTrace(cut)).toThrow(/cut\.trace\.gz: cannot decompress the trace/);
  });
});

describe("trace phases", () => {
  it("remap sparse pages to dense frames, copies owned by their vCPU, replay order code, read, written", () => {
    const w = workload({ copies: 2, speed: 1 });
    const [ph] = compilePhases(w);
    expect(ph.trace).toMatchObject({ copies: 2, base: 0, slot: FOOTPRINT, loop: true });
    // vCPU 1, copy 0, window 0: code 0x400, 0x401 (frames 0, 1), read heap, heap+1, stack (3, 4, 9), written heap+2, stack+1 (5, 10).
    const a = draw(w, 1, 14);
    expect(a.slice(0, 7).map((x) => x.page)).toEqual([0, 1, 3, 4, 9, 5, 10].map((f) => f * 2 + 1));
    expect(a.slice(0, 7).map((x) => x.write)).toEqual([false, false, false, false, false, true, true]);
    // copy 1 of the same window: frames shifted by one slot.
    expect(a.slice(7, 14).map((x) => x.page)).toEqual([0, 1, 3, 4, 9, 5, 10].map((f) => (FOOTPRINT + f) * 2 + 1));
    // speed 1 instruction/µs: 1000 instructions over 7 accesses.
    expect(a[0].ns).toBeCloseTo(1e6 / 7);
  });

  it("fill the region with copies, and say when they do not fit", () => {
    const w = workload({ copies: "fill", region: { offset: 0.5, size: 0.5 } });
    expect(compilePhases(w)[0].trace).toMatchObject({ base: 128, copies: Math.floor(128 / (FOOTPRINT * 2)) });
    expect(() => compilePhases(workload({ copies: 12 }))).toThrow(/12 copies per vCPU of a 11-page trace on 2 vCPUs need 264 pages, the phase's region has 256/);
  });

  it("refuse a looping trace before other phases, a recorded speed without a native time, a missing file", () => {
    const pattern = { steps: 5, compute_ns: 1, write_share: 0.5, pattern: { kind: "uniform" } };
    expect(() =>
      parseWorkload({ ppsim_workload: 2, name: "t", memory: "1MiB", phases: [{ kind: "trace", trace: "sample.trace.gz" }, pattern] }, "t.json", dir),
    ).toThrow(/^t\.json: phases\[0\] replays its trace in a loop forever/);
    const noTime = writeTrace(join(dir, "untimed.trace.gz"), sampleWindows());
    expect(() => workload({ trace: noTime, speed: "recorded" })).toThrow(/speed is "recorded" but .* has no native_us/);
    expect(() => workload({ trace: "nope.trace.gz" })).toThrow(WorkloadError);
    expect(() => workload({ trace: "nope.trace.gz" })).toThrow(/^t\.json: phases\[0\]\.trace cannot be replayed: .*nope\.trace\.gz: cannot read the trace/);
    expect(workload({ speed: "recorded" }).phases[0].trace?.traces[0].speed).toBe(3400 / 2);
    expect(() => workload({}, { page_size: 8192 })).toThrow(/phases\[0\]\.trace was recorded in pages of 4096 bytes, the workload's page_size is 8192/);
  });

  it("a pass without loop ends the phase; the next phase follows", () => {
    const w = parseWorkload(
      { ppsim_workload: 2, name: "t", memory: 64 * 4096, vcpus: 1, phases: [{ kind: "trace", trace: "sample.trace.gz", loop: false }, { kind: "pattern", steps: 3, compute_ns: 7, write_share: 0, pattern: { kind: "sequential", region: { offset: 0.5 } } }] },
      "t.json",
      dir,
    );
    const pass = 7 + 5 + 3 + 5;
    const a = draw(w, 0, pass + 3 + 2);
    expect(a.slice(pass, pass + 3).map((x) => [x.page, x.ns])).toEqual([[32, 7], [33, 7], [34, 7]]);
    expect(a.slice(pass + 3).map((x) => x.page)).toEqual(a.slice(0, 2).map((x) => x.page));
  });

  it("are deterministic, continue exactly after save and restore, and write only pages their vCPU owns", () => {
    const w = workload({ copies: 3, trace: ["sample.trace.gz", writeTrace(join(dir, "b.trace.gz"), sampleWindows().slice(1))] }, { vcpus: 3, memory: 512 * 4096 });
    const phases = compilePhases(w);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 }), fc.integer({ min: 0, max: 200 }), (v, cut) => {
        const a = new AccessGenerator(phases, 3, v, 9);
        for (let i = 0; i < cut; i++) {
          a.next();
          if (a.isWrite) expect(a.page % 3).toBe(v);
          expect(a.page).toBeLessThan(w.pageCount);
        }
        const view = new DataView(new ArrayBuffer(GENERATOR_STATE_BYTES));
        a.save(view, 0);
        const b = AccessGenerator.restore(phases, 3, v, 9, view, 0);
        for (let i = 0; i < 60; i++) expect([b.computeNs, b.next(), b.isWrite]).toEqual([a.computeNs, a.next(), a.isWrite]);
      }),
      { numRuns: 60 },
    );
    expect(draw(w, 2, 300)).toEqual(draw(w, 2, 300));
  });

  it.each(["precopy", "postcopy", "hybrid"] as const)("a simulated %s migration of a trace workload verifies", (mode) => {
    const w = workload({ copies: "fill", speed: 50 }, { memory: "8MiB", warmup_ms: 20 });
    const r = simulate({ workload: w, options: { mode }, link: { bandwidthBytesPerSec: 125e6, latencyUs: 100 }, seed: 3 });
    expect(r.outcome).toBe("completed");
    expect(r.verified).toBe(true);
  });
});

describe("the native guest replays what the simulator replays", () => {
  // A sequential pattern that always writes draws nothing random in either implementation: it can sit between trace passes.
  const sequential = { kind: "pattern", steps: 300, compute_ns: 10, write_share: 1, pattern: { kind: "sequential", stride: 5, region: { offset: 0.5, size: 0.5 } } };
  it("equal memory hashes after the same steps", async () => {
    const w = workload({ copies: 2, speed: 200, loop: false }, { vcpus: 3, memory: 192 * 4096, zero_share: 0.5 });
    w.phases.push(parseWorkload({ ppsim_workload: 2, name: "s", memory: w.memBytes, phases: [sequential] }).phases[0]);
    const STEPS = 5000;
    const g = await GuestProcess.spawn({ role: "source", config: toGuestConfig(w, 5), steps: STEPS });
    try {
      await g.run();
      for (;;) {
        const p = await g.progress();
        if (p.vcpus.every((x) => x.finished)) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(await g.hash()).toBe(expectedGuestHash(w, 5, STEPS));
    } finally {
      await g.quit();
    }
  });

  it("refuses a trace layout that would leave its memory (a destination's config comes from its peer)", async () => {
    const good = toGuestConfig(workload({ copies: 2 }), 5);
    const cases: [string, RegExp][] = [
      [good.replace(/slot=\d+/, "slot=3"), /more frames than slot/],
      [good.replace(/copies=\d+/, "copies=999"), /do not fit in mem_bytes/],
      [good.replace(/base=\d+/, "base=1"), /base must be a multiple of vcpus/],
      [good.replace(/\ntw [^\n]*\n/, "\n"), /fewer 'tw' lines|windows do not add up/],
    ];
    for (const [config, msg] of cases) await expect(GuestProcess.spawn({ role: "source", config, steps: 10 })).rejects.toThrow(msg);
  });
});
