/**
 * The engine's parts, each on its own: the page ledger and recovery's pure
 * reconciliation, the switchover policy, the pacer, the throughput
 * estimator, the timer table; and two contract points of the Source: a
 * malformed stream is a protocol error (never a link to recover), and a
 * demand reply goes ahead of background pages not yet pulled.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  Bitmap,
  Pacer,
  PageLedger,
  reconcileHeld,
  resolveOptions,
  Source,
  SwitchoverPolicy,
  ThroughputEstimator,
  TimerTable,
  type Message,
} from "../src/engine/index.js";
import { entriesOf } from "./support/pages.js";
import { postcopySourcePastSwitchover } from "./support/postcopy-source.js";

describe("PageLedger", () => {
  it("books sends, dirt and stale copies", () => {
    const l = new PageLedger(8);
    l.pendAllUnsent();
    expect(l.markSent(1, "bulk")).toBe(false);
    l.bulkOffset += 100;
    expect(l.markSent(2, "urgent")).toBe(false);
    expect(l.markSent(1, "bulk")).toBe(true); // a re-send
    l.dirtied(Uint32Array.of(1, 5));
    expect(l.sent.has(1)).toBe(false);
    expect(l.pending.has(1)).toBe(true);
    expect([...l.stale()]).toEqual([1]);
    l.pendAllUnsent();
    expect(l.pending.count).toBe(7);
  });

  it("remembers each page's newest bulk offset as a per-page array would, through sends, pulls and recoveries", () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant("send" as const), page: fc.nat(15), bulk: fc.boolean() }),
      fc.record({ kind: fc.constant("pull" as const), bytes: fc.integer({ min: 1, max: 300 }) }),
      fc.record({ kind: fc.constant("recover" as const), back: fc.nat(400), received: fc.nat(0xffff) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const l = new PageLedger(16);
        const model = new Float64Array(16).fill(-1);
        for (const o of ops) {
          if (o.kind === "send") {
            l.markSent(o.page, o.bulk ? "bulk" : "urgent");
            model[o.page] = o.bulk ? l.bulkOffset : -1;
          } else if (o.kind === "pull") l.bulkOffset += o.bytes;
          else {
            const bulkBytes = Math.max(0, l.bulkOffset - o.back);
            const received = new Bitmap(16);
            for (let p = 0; p < 16; p++) if (o.received & (1 << p)) received.set(p);
            l.reconcile({ resumed: true, bulkBytes, received });
            for (let p = 0; p < 16; p++) if (model[p] >= bulkBytes) model[p] = -1;
          }
          for (let p = 0; p < 16; p++) expect(l.offsets.of(p)).toBe(model[p]);
        }
      }),
    );
  });

  it("reconciliation keeps exactly the received pages whose newest copy arrived and is current", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ sent: fc.boolean(), offset: fc.integer({ min: -1, max: 1000 }), received: fc.boolean() }), { minLength: 1, maxLength: 64 }),
        fc.integer({ min: 0, max: 1000 }),
        fc.boolean(),
        (pages, bulkBytes, resumed) => {
          const n = pages.length;
          const sent = new Bitmap(n);
          const received = new Bitmap(n);
          const offsets = new Float64Array(n);
          pages.forEach((p, i) => {
            if (p.sent) sent.set(i);
            if (p.received) received.set(i);
            offsets[i] = p.offset;
          });
          const r = reconcileHeld(sent, { of: (page) => offsets[page] }, { resumed, bulkBytes, received });
          pages.forEach((p, i) => {
            // Past the switchover a received copy is current wherever it went (several bulk connections).
            const lost = p.offset >= 0 && p.offset >= bulkBytes && !(resumed && p.received);
            expect(r.held.has(i)).toBe(p.received && p.sent && !lost);
            expect(r.lost.includes(i)).toBe(lost);
            expect(r.mustDrop.includes(i)).toBe(!resumed && p.received && !r.held.has(i));
          });
        },
      ),
    );
  });
});

describe("SwitchoverPolicy", () => {
  const pageBytes = 4096 + 5;
  it("switches over once the dirty set fits the downtime limit at the measured bandwidth", () => {
    const p = new SwitchoverPolicy(resolveOptions({ downtimeLimitMs: 10, downtimeMargin: 0 }), 4096);
    const bw = 100; // bytes per µs = 100 MB/s
    const fits = Math.floor((10_000 * bw) / pageBytes);
    expect(p.afterRound({ rounds: 1, roundPages: 1000, roundBytes: 1000 * pageBytes, dirtyPages: fits, bytesPerUs: bw, throttle: 0 })).toEqual({ kind: "switch", reason: "converged" });
    expect(p.afterRound({ rounds: 1, roundPages: 1000, roundBytes: 1000 * pageBytes, dirtyPages: fits + 1, bytesPerUs: bw, throttle: 0 }).kind).toBe("continue");
    expect(p.expectedDowntimeMs(fits, bw)).toBeLessThanOrEqual(10);
  });

  it("keeps the margin back: an estimate just inside the limit but past (1 - margin) of it goes on", () => {
    const bw = 1000; // 1 GB/s
    const at = (ms: number) => Math.floor((ms * 1000 * bw) / pageBytes); // pages whose estimate is ms
    const round = { rounds: 1, roundPages: 262144, roundBytes: 262144 * pageBytes, bytesPerUs: bw, throttle: 0 };
    // Defaults (300 ms, margin 0.1): the 299 ms estimate a real 1 GiB database run switched on, and overshot
    // to 332 ms, now goes on; 270 ms switches.
    const p = new SwitchoverPolicy(resolveOptions({}), 4096);
    expect(p.targetDowntimeMs).toBeCloseTo(270, 9);
    expect(p.afterRound({ ...round, dirtyPages: at(299) }).kind).toBe("continue");
    expect(p.afterRound({ ...round, dirtyPages: at(270) })).toEqual({ kind: "switch", reason: "converged" });
    expect(p.afterRound({ ...round, dirtyPages: at(270) + 1 }).kind).toBe("continue");
    // Margin 0: the limit itself.
    const none = new SwitchoverPolicy(resolveOptions({ downtimeMargin: 0 }), 4096);
    expect(none.afterRound({ ...round, dirtyPages: at(299) })).toEqual({ kind: "switch", reason: "converged" });
    expect(() => resolveOptions({ downtimeMargin: 1 })).toThrow(/downtimeMargin must be in \[0, 1\)/);
    expect(() => resolveOptions({ downtimeMargin: -0.1 })).toThrow(/downtimeMargin/);
  });

  it("switches a few pages over even when the estimate is small (no round-cap on a tiny remainder)", () => {
    const p = new SwitchoverPolicy(resolveOptions({ downtimeLimitMs: 300 }), 4096);
    // 9 pages at 1 MB/s take 37 ms: well inside 300 ms.
    expect(p.afterRound({ rounds: 5, roundPages: 20, roundBytes: 20 * pageBytes, dirtyPages: 9, bytesPerUs: 1, throttle: 0.3 })).toEqual({ kind: "switch", reason: "converged-throttled" });
  });

  it("caps rounds, and auto-converges after two busy rounds", () => {
    const p = new SwitchoverPolicy(resolveOptions({ maxRounds: 4, downtimeLimitMs: 1 }), 4096);
    const busy = { roundPages: 100, roundBytes: 100 * pageBytes, dirtyPages: 90, bytesPerUs: 1, throttle: 0 };
    expect(p.afterRound({ ...busy, rounds: 1 })).toEqual({ kind: "continue", throttle: null });
    expect(p.afterRound({ ...busy, rounds: 2 })).toEqual({ kind: "continue", throttle: 0.2 });
    expect(p.afterRound({ ...busy, rounds: 4 })).toEqual({ kind: "switch", reason: "round-cap" });
  });

  it("hybrid goes post-copy after its rounds, or when a round hardly shrinks the dirty set", () => {
    const p = new SwitchoverPolicy(resolveOptions({ mode: "hybrid", hybridRounds: 3, downtimeLimitMs: 1 }), 4096);
    expect(p.afterRound({ rounds: 1, roundPages: 100, roundBytes: 0, dirtyPages: 95, bytesPerUs: 1, throttle: 0 })).toEqual({ kind: "switch", reason: "hybrid-stalled" });
    expect(p.afterRound({ rounds: 1, roundPages: 100, roundBytes: 0, dirtyPages: 50, bytesPerUs: 1, throttle: 0 }).kind).toBe("continue");
    expect(p.afterRound({ rounds: 3, roundPages: 100, roundBytes: 0, dirtyPages: 50, bytesPerUs: 1, throttle: 0 })).toEqual({ kind: "switch", reason: "hybrid-rounds" });
  });
});

describe("Pacer", () => {
  it("lets a burst go, then holds sends to the rate", () => {
    const p = new Pacer(1e6, 1000); // 1 byte/µs, 1000-byte burst
    p.start(0);
    expect(p.delay(1000, 0)).toBe(0); // starts full
    p.spend(1000, 0);
    expect(p.delay(1000, 0)).toBe(1000);
    expect(p.delay(1000, 1000)).toBe(0);
    p.spend(1000, 1000);
    expect(p.delay(500, 1000)).toBe(500);
    expect(p.delay(500, 1500)).toBe(0);
    // Idle for long: only a burst's worth builds up.
    expect(p.delay(3000, 1e9)).toBe(0); // a message larger than the burst still goes, alone
  });
  it("keeps the tokens a sender waited for when its message comes out smaller than the one it asked about", () => {
    // The page sender asks about its worst batch (every page with data) and spends what it made
    // (zero pages are 5-byte entries): the rest stays in the bucket for the next batch.
    const p = new Pacer(1e6, 1000);
    p.start(0);
    p.spend(1000, 0);
    expect(p.delay(3000, 0)).toBe(3000);
    expect(p.delay(3000, 3000)).toBe(0);
    p.spend(500, 3000);
    expect(p.delay(3000, 3000)).toBe(500);
    // Sent at the rate over time: 3500 bytes in 3500 µs, not one worst batch's wait per small batch.
    p.spend(3000, 3500);
    expect(p.delay(1, 3500)).toBe(1);
  });
  it("never limits without a cap", () => {
    expect(new Pacer(0, 0).delay(1e9, 0)).toBe(0);
  });
  it("fills from the migration's start, not from the clock's zero (the real clock is wall time)", () => {
    for (const origin of [0, 1_796_127_122_963_920]) {
      const p = new Pacer(1e6, 1000);
      p.start(origin);
      p.spend(1000, origin);
      expect(p.delay(1000, origin + 400)).toBe(600);
    }
  });
});

describe("ThroughputEstimator", () => {
  it("measures the drain rate, leaving out the window-filling burst and starved spells", () => {
    const t = new ThroughputEstimator();
    expect(t.bytesPerUs).toBe(Infinity);
    t.onPull(1e6, 0); // the burst that fills an empty window
    t.onPull(1e6, 0);
    for (let i = 1; i <= 10; i++) t.onPull(1000, i * 10); // then 1000 bytes every 10 µs
    expect(t.bytesPerUs).toBeCloseTo(100);
    t.onStarved();
    t.onPull(5e6, 1e6); // a new streak's burst, after a long idle time
    expect(t.bytesPerUs).toBeCloseTo(100);
  });
});

describe("TimerTable", () => {
  it("answers the earliest deadline and expires what is due", () => {
    const t = new TimerTable<"a" | "b" | "c">();
    expect(t.next()).toBeNull();
    t.set("a", 30);
    t.set("b", 10);
    t.set("c", 20);
    t.clear("c");
    expect(t.next()).toBe(10);
    expect(t.expire(15)).toEqual(["b"]);
    expect(t.next()).toBe(30);
    expect(t.expire(100)).toEqual(["a"]);
    expect(t.next()).toBeNull();
  });
});

/** A source past handshake, in post-copy, with 64 pages of data. */
function postcopySource(urgent: boolean): Source<number> {
  return postcopySourcePastSwitchover({ urgentChannel: urgent, batchPages: 4 }, 4096, 64);
}

describe("Source contract", () => {
  it("answers a page request ahead of every background page not yet pulled, on the shared lane too", () => {
    for (const urgent of [true, false]) {
      const s = postcopySource(urgent);
      const first = s.pollTransmit("bulk", 30) as Message<number> & { type: "pages" };
      expect(Array.from(first.pages)).toEqual([0, 1, 2, 3]);
      s.handle({ kind: "message", msg: { type: "pageRequest", page: 50 } }, 40);
      const reply = s.pollTransmit(urgent ? "urgent" : "bulk", 40) as Message<number> & { type: "pages" };
      expect(entriesOf(reply)).toEqual([{ page: 50, data: 51 }]);
    }
  });

  it("takes a malformed stream after switchover for a protocol error: failed, paused, every page kept — no reconnecting", () => {
    const s = postcopySource(true);
    s.handle({ kind: "malformed", reason: "bad frame magic 0x4547" }, 50);
    const end = s.pollAction();
    expect(end).toMatchObject({ kind: "finished", outcome: "failed", cause: "protocol-error" });
    expect((end as { reason: string }).reason).toMatch(/bad frame magic.*stays paused and keeps every page/);
    expect(s.pollTimeout()).toBeNull();
    s.handle({ kind: "linkUp" }, 60);
    expect(s.pollTransmit("bulk", 60)).toBeNull();
  });

  it("answers cancel as a return value", () => {
    const s = postcopySource(true);
    expect(s.cancel("op", 30)).toEqual({ ok: false, reason: expect.stringMatching(/past switchover/) });
    const t = new Source<number>(resolveOptions({}), { pageSize: 4096, pageCount: 8 }, { readPage: () => null, collectDirty: () => new Uint32Array(0) });
    t.start(0);
    expect(t.cancel("op", 5)).toEqual({ ok: true });
    expect(t.pollAction()).toMatchObject({ kind: "finished", outcome: "cancelled", cause: "cancelled" });
  });

  it("gives up an unanswered handshake at the setup deadline, the guest running on", () => {
    const t = new Source<number>(resolveOptions({ setupTimeoutMs: 5 }), { pageSize: 4096, pageCount: 8 }, { readPage: () => null, collectDirty: () => new Uint32Array(0) });
    t.start(0);
    expect(t.pollTimeout()).toBe(5000);
    t.handleTimeout(5000);
    expect(t.pollAction()).toMatchObject({ kind: "finished", outcome: "failed", cause: "setup-timeout" });
  });
});
