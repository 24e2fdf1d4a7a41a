import { describe, expect, it } from "vitest";
import { Guest, GuestShared } from "../src/sim/guest.js";
import { compilePhases, parseWorkload, type Workload } from "../src/workload/index.js";

function workload(vcpus = 3, writeShare = 0.5): Workload {
  return parseWorkload({
    ppsim_workload: 1,
    name: "g",
    memory: 256 * 4096,
    vcpus,
    zero_share: 0.5,
    phases: [
      { steps: 50, compute_ns: 1000, write_share: writeShare, pattern: { kind: "uniform" } },
      { steps: 30, compute_ns: 300, write_share: writeShare, pattern: { kind: "sequential", stride: 3 } },
    ],
  });
}

function pair(w: Workload) {
  const shared = new GuestShared(w, compilePhases(w), 5);
  const stalls: [number, number, number][] = [];
  const onStall = (v: number, p: number, at: number) => stalls.push([v, p, at]);
  return { shared, stalls, src: new Guest("source", shared, onStall), dst: new Guest("destination", shared, onStall) };
}

const written = (mem: Uint32Array, pageCount: number) => mem.map((v) => (v > pageCount ? 1 : 0));

describe("simulated guest", () => {
  it("starts with the zero pages of SPEC.md and distinct versions elsewhere", () => {
    const { src } = pair(workload());
    const nonZero = [...src.memory].filter((v) => v !== 0);
    expect(new Set(nonZero).size).toBe(nonZero.length);
    expect(nonZero.length).toBeGreaterThan(80);
    expect(nonZero.length).toBeLessThan(176);
    expect(src.readPage(src.memory.indexOf(0))).toBeNull();
  });

  it("tracks dirty pages from the first collectDirty on, each once", () => {
    const w = workload();
    const { src } = pair(w);
    src.boot(0);
    src.runUntil(100);
    expect(src.collectDirty()).toEqual(new Uint32Array(0));
    const before = src.memory.slice();
    src.runUntil(300);
    const dirty = [...src.collectDirty()].sort((a, b) => a - b);
    const changed = [...src.memory.keys()].filter((p) => src.memory[p] !== before[p]);
    expect(dirty).toEqual(changed);
    expect(src.collectDirty()).toEqual(new Uint32Array(0));
  });

  it("the source loop with and without a progress recorder performs the same accesses, and its dirty list grows past its first size", () => {
    // 2^17 pages written once each in a round: twice the dirty list's first 2^16 entries.
    const w = parseWorkload({
      ppsim_workload: 1,
      name: "big",
      memory: (1 << 17) * 4096,
      vcpus: 2,
      zero_share: 0,
      phases: [
        { steps: 1 << 17, compute_ns: 10, write_share: 1, pattern: { kind: "sequential", stride: 1 } },
        { steps: 5000, compute_ns: 20, write_share: 0.3, pattern: { kind: "uniform" } },
      ],
    });
    const run = (record: boolean) => {
      const { src, shared } = pair(w);
      src.boot(0);
      src.collectDirty();
      if (record) shared.progress.start(0);
      const before = src.memory.slice();
      for (let t = 1; t <= 8000; t += 997) src.runUntil(t);
      const dirty = [...src.collectDirty()];
      return { src, shared, before, dirty };
    };
    const plain = run(false);
    const recorded = run(true);
    expect(plain.dirty.length).toBeGreaterThan(1 << 16);
    expect(new Set(plain.dirty).size).toBe(plain.dirty.length);
    const changed = [...plain.src.memory.keys()].filter((p) => plain.src.memory[p] !== plain.before[p]);
    expect([...plain.dirty].sort((a, b) => a - b)).toEqual(changed);
    expect(recorded.dirty).toEqual(plain.dirty);
    expect(recorded.src.memory).toEqual(plain.src.memory);
    expect(recorded.shared.accesses).toBe(plain.shared.accesses);
    expect(recorded.shared.workUs).toBe(plain.shared.workUs);
  });

  it("a vCPU takes compute_ns plus the access per step, and throttling slows it", () => {
    const w = workload(1, 0);
    const { src, shared } = pair(w);
    src.boot(0);
    src.runUntil(10.5 * 1.05);
    expect(shared.accesses).toBe(10);
    src.setThrottle(0.5);
    src.runUntil(10.5 * 1.05 + 2.1 * 5);
    expect(shared.accesses).toBe(15);
  });

  it("moving the vCPUs mid-run changes nothing: same accesses, same pages written", () => {
    const w = workload();
    const alone = pair(w);
    alone.src.boot(0);
    alone.src.runUntil(500);

    const moved = pair(w);
    moved.src.boot(0);
    moved.src.runUntil(123.4);
    const state = moved.src.pause(123.4);
    moved.src.memory.forEach((version, page) => moved.dst.install(page, version, 123.4));
    moved.dst.resume(123.4, state);
    moved.dst.runUntil(500);

    expect(moved.shared.accesses).toBe(alone.shared.accesses);
    expect(written(moved.dst.memory, w.pageCount)).toEqual(written(alone.src.memory, w.pageCount));
  });

  it("a missing page stalls its vCPU until installed; the retried write lands", () => {
    const w = workload(1, 1);
    const { src, dst, stalls, shared } = pair(w);
    src.boot(0);
    dst.resume(0, src.pause(0));
    dst.mirror = new Uint32Array(w.pageCount);
    dst.runUntil(50);
    expect(stalls.length).toBe(1);
    const [v, page, at] = stalls[0];
    expect(dst.isStalledOn(v, page, at)).toBe(true);
    expect(shared.accesses).toBe(0);
    dst.runUntil(100);
    expect(stalls.length).toBe(1);
    dst.install(page, 0, 60);
    expect(dst.stalledVcpus).toBe(0);
    expect(shared.accesses).toBe(1);
    expect(dst.memory[page]).toBeGreaterThan(w.pageCount);
    expect(dst.mirror[page]).toBe(dst.memory[page]);
  });
});
