/**
 * The background stream's run-wise path (docs/sim-scaling.md, sixth pass)
 * against the page-wise one it replaced: the same pages in the same order,
 * the same ledger, the same destination books, the same simulated guest.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { anyBitIn, Bitmap, setBitsIn } from "../src/engine/bitmap.js";
import { DestinationPages } from "../src/engine/dest-pages.js";
import { PageLedger } from "../src/engine/ledger.js";
import { emptyDestinationMetrics } from "../src/engine/metrics.js";
import { LinearOrder, NeighbourhoodOrder, type BackgroundOrder } from "../src/engine/order.js";
import { Guest, GuestShared } from "../src/sim/guest.js";
import { compilePhases, parseWorkload } from "../src/workload/index.js";

const SEED = { seed: 1406, numRuns: 300 };

const bitmapOf = (size: number, bits: readonly number[]) => {
  const b = new Bitmap(size);
  for (const i of bits) if (i < size) b.set(i);
  return b;
};

/** A range [from, to) within `size`. */
const range = (size: number, a: number, b: number): [number, number] => {
  const x = a % (size + 1);
  const y = b % (size + 1);
  return x <= y ? [x, y] : [y, x];
};

describe("Bitmap range operations", () => {
  it("setRange, clearRange, anyInRange and runFrom do what the bit-by-bit calls do", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 200 }), fc.array(fc.nat(199)), fc.nat(), fc.nat(), fc.integer({ min: 1, max: 70 }), (size, bits, a, b, max) => {
        const [from, to] = range(size, a, b);
        const ref = bitmapOf(size, bits);
        const want = { any: false, added: 0, removed: 0 };
        for (let i = from; i < to; i++) want.any ||= ref.has(i);
        const set = ref.clone();
        for (let i = from; i < to; i++) if (set.set(i)) want.added++;
        const cleared = ref.clone();
        for (let i = from; i < to; i++) if (cleared.clear(i)) want.removed++;

        const x = ref.clone();
        expect(x.anyInRange(from, to)).toBe(want.any);
        expect(x.setRange(from, to)).toBe(want.added);
        expect([...x]).toEqual([...set]);
        expect(x.count).toBe(set.count);
        const y = ref.clone();
        expect(y.clearRange(from, to)).toBe(want.removed);
        expect([...y]).toEqual([...cleared]);
        expect(y.count).toBe(cleared.count);

        const start = ref.nextSet(from);
        if (start >= 0) {
          let n = 0;
          while (n < max && start + n < size && ref.has(start + n)) n++;
          expect(ref.runFrom(start, max)).toBe(n);
        }
      }),
      SEED,
    );
  });

  it("anyBitIn and setBitsIn on raw words agree with the bit-by-bit form", () => {
    fc.assert(
      fc.property(fc.array(fc.nat(199)), fc.nat(), fc.nat(), (bits, a, b) => {
        const [from, to] = range(200, a, b);
        const words = new Uint32Array(7);
        for (const i of bits) words[i >>> 5] |= 1 << (i & 31);
        const has = (w: Uint32Array, i: number) => (w[i >>> 5] & (1 << (i & 31))) !== 0;
        let any = false;
        for (let i = from; i < to; i++) any ||= has(words, i);
        expect(anyBitIn(words, from, to)).toBe(any);
        const want = words.slice();
        for (let i = from; i < to; i++) want[i >>> 5] |= 1 << (i & 31);
        setBitsIn(words, from, to);
        expect([...words]).toEqual([...want]);
      }),
      SEED,
    );
  });
});

/** What `next` gives, page by page, each taken out of pending before the next call (the page-wise sender). */
function pagewise(order: BackgroundOrder, pending: Bitmap, max: number): number[] {
  const out: number[] = [];
  while (out.length < max) {
    const p = order.next(pending);
    if (p < 0) break;
    pending.clear(p);
    out.push(p);
  }
  return out;
}

function runwise(order: BackgroundOrder, pending: Bitmap, max: number): number[] {
  const out: number[] = [];
  while (out.length < max) {
    const p = order.nextRun(pending, max - out.length);
    if (p < 0) break;
    const n = order.runLength;
    expect(n).toBeGreaterThanOrEqual(1);
    for (let k = 0; k < n; k++) {
      expect(pending.has(p + k)).toBe(true);
      out.push(p + k);
    }
    pending.clearRange(p, p + n);
  }
  return out;
}

describe("background orders by runs", () => {
  it("nextRun gives the pages next gives, in the same order, with faults between batches", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.array(fc.nat(299), { maxLength: 200 }),
        fc.constantFrom("linear", "neighbourhood"),
        fc.integer({ min: 0, max: 40 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 40 }), fc.array(fc.nat(299), { maxLength: 3 })), { maxLength: 30 }),
        (size, holes, kind, window, steps) => {
          const make = (): BackgroundOrder => (kind === "linear" ? new LinearOrder() : new NeighbourhoodOrder(window, 4));
          const a = make();
          const b = make();
          const pa = Bitmap.full(size);
          for (const h of holes) if (h < size) pa.clear(h);
          const pb = pa.clone();
          for (const [max, faults] of steps) {
            for (const f of faults) {
              a.onFault(f % size);
              b.onFault(f % size);
            }
            expect(runwise(b, pb, max)).toEqual(pagewise(a, pa, max));
          }
        },
      ),
      SEED,
    );
  });
});

describe("PageLedger.markSentRun", () => {
  it("books a run as markSent books its pages one by one", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 150 }),
        fc.array(fc.tuple(fc.constantFrom("run", "urgent", "dirty", "pull"), fc.nat(149), fc.integer({ min: 1, max: 20 })), { maxLength: 40 }),
        (size, ops) => {
          const a = new PageLedger(size);
          const b = new PageLedger(size);
          a.pendAllUnsent();
          b.pendAllUnsent();
          for (const [op, at, len] of ops) {
            const first = at % size;
            const end = Math.min(size, first + len);
            if (op === "run") {
              let resent = 0;
              for (let p = first; p < end; p++) if (a.markSent(p, "bulk")) resent++;
              expect(b.markSentRun(first, end - first)).toBe(resent);
            } else if (op === "urgent") {
              expect(b.markSent(first, "urgent")).toBe(a.markSent(first, "urgent"));
            } else if (op === "dirty") {
              const pages = Uint32Array.from({ length: end - first }, (_, k) => first + k);
              a.dirtied(pages);
              b.dirtied(pages);
            } else {
              // A message pulled: the bulk offset moves on.
              a.bulkOffset += len * 100;
              b.bulkOffset += len * 100;
            }
          }
          for (const [x, y] of [[a.sent, b.sent], [a.pending, b.pending], [a.everSent, b.everSent]] as const) {
            expect([...y]).toEqual([...x]);
            expect(y.count).toBe(x.count);
          }
          for (let p = 0; p < size; p++) expect(b.offsets.of(p)).toBe(a.offsets.of(p));
        },
      ),
      SEED,
    );
  });
});

type Step = { kind: "batch"; pages: number[]; running: boolean } | { kind: "fault"; page: number; vcpu: number } | { kind: "drop"; page: number };

const step = (size: number): fc.Arbitrary<Step> =>
  fc.oneof(
    // Mostly runs, with gaps and repeats: what the background stream and demand replies look like.
    fc
      .tuple(fc.nat(size - 1), fc.array(fc.tuple(fc.integer({ min: 1, max: 12 }), fc.integer({ min: 0, max: 3 })), { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([start, parts, running]) => {
        const pages: number[] = [];
        let p = start;
        for (const [len, gap] of parts) {
          for (let k = 0; k < len && p < size; k++) pages.push(p++);
          p = gap === 3 ? Math.max(0, p - 5) : p + gap;
        }
        return { kind: "batch" as const, pages, running };
      }),
    fc.record({ kind: fc.constant("fault" as const), page: fc.nat(size - 1), vcpu: fc.nat(3) }),
    fc.record({ kind: fc.constant("drop" as const), page: fc.nat(size - 1) }),
  );

describe("DestinationPages.intake by runs", () => {
  it("gives the books, the installs and the waits that page-by-page intake gives", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 120 }).chain((size) => fc.tuple(fc.constant(size), fc.array(step(size), { maxLength: 40 }))),
        ([size, steps]) => {
          const ma = emptyDestinationMetrics();
          const mb = emptyDestinationMetrics();
          const a = new DestinationPages(size, ma);
          const b = new DestinationPages(size, mb);
          let now = 0;
          for (const s of steps) {
            now += 7;
            if (s.kind === "batch") {
              const batch = { pages: Uint32Array.from(s.pages), data: s.pages.map((p) => (p % 3 === 0 ? null : p + 1000)) };
              const ia = a.intake(batch, s.running, now, false);
              const ib = b.intake(batch, s.running, now);
              expect(ib === null ? null : { pages: [...ib.pages], data: ib.data }).toEqual(ia === null ? null : { pages: [...ia.pages], data: ia.data });
            } else if (s.kind === "fault") {
              expect(b.fault(s.page, s.vcpu, now)).toBe(a.fault(s.page, s.vcpu, now));
            } else {
              a.drop(s.page);
              b.drop(s.page);
            }
          }
          expect([...b.present]).toEqual([...a.present]);
          expect([...b.waitedFor()]).toEqual([...a.waitedFor()]);
          expect(mb).toEqual(ma);
        },
      ),
      SEED,
    );
  });
});

describe("the simulated guest installs by runs", () => {
  it("installBatch leaves memory, presence and stalled vCPUs as install page by page does", () => {
    const w = parseWorkload({
      ppsim_workload: 1,
      name: "runs",
      memory: 96 * 4096,
      vcpus: 4,
      zero_share: 0,
      phases: [{ steps: 400, compute_ns: 500, write_share: 0.3, pattern: { kind: "uniform" } }],
    });
    const phases = compilePhases(w);
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(95), fc.integer({ min: 1, max: 10 }), fc.boolean()), { minLength: 1, maxLength: 25 }),
        fc.integer({ min: 1, max: 9 }),
        (batches, seed) => {
          const guests = [0, 1].map(() => {
            const shared = new GuestShared(w, phases, seed);
            const src = new Guest("source", shared, () => undefined);
            const dst = new Guest("destination", shared, () => undefined);
            src.boot(0);
            dst.resume(0, src.pause(0));
            return { shared, dst };
          });
          let now = 0;
          for (const [start, len, skip] of batches) {
            now += 3;
            for (const g of guests) g.dst.runUntil(now);
            const pages: number[] = [];
            for (let p = start; p < Math.min(96, start + len); p += skip ? 2 : 1) pages.push(p);
            const data = pages.map((p) => (p % 4 === 0 ? null : p + 500));
            for (let i = 0; i < pages.length; i++) guests[0].dst.install(pages[i], data[i] ?? 0, now);
            guests[1].dst.installBatch(Uint32Array.from(pages), data, now);
          }
          now += 3;
          for (const g of guests) g.dst.runUntil(now);
          const [a, b] = guests;
          expect([...b.dst.memory]).toEqual([...a.dst.memory]);
          for (let p = 0; p < 96; p++) expect(b.dst.isPresent(p)).toBe(a.dst.isPresent(p));
          expect(b.dst.stalledVcpus).toBe(a.dst.stalledVcpus);
          expect([b.shared.accesses, b.shared.workUs, b.shared.lastVersion]).toEqual([a.shared.accesses, a.shared.workUs, a.shared.lastVersion]);
          expect(JSON.stringify(b.shared.faults)).toBe(JSON.stringify(a.shared.faults));
        },
      ),
      { seed: 1406, numRuns: 150 },
    );
  });
});
