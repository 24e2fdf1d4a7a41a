/**
 * Reused message objects (docs/sim-scaling.md, eighth pass): a page sender
 * whose messages are handed back (`recycle`) makes the same messages as one
 * whose messages never are, and the simulated link that reuses its event and
 * queue objects delivers what was sent, in the model's order.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PageLedger } from "../src/engine/ledger.js";
import type { Message, PagesMsg } from "../src/engine/messages.js";
import { newSourceMetrics } from "../src/engine/metrics.js";
import { LinearOrder } from "../src/engine/order.js";
import { Pacer } from "../src/engine/pacer.js";
import { PageSender, type PageRuns } from "../src/engine/page-sender.js";
import { EventQueue } from "../src/sim/event-queue.js";
import { Link, type LinkEvent } from "../src/sim/link.js";

const SEED = { seed: 1408, numRuns: 200 };

function sender(pageCount: number, batchPages: number, memory: readonly number[]) {
  const ledger = new PageLedger(pageCount);
  ledger.pendAllUnsent();
  const layout = { pageSize: 4096, pageCount };
  const metrics = newSourceMetrics("postcopy", layout);
  // A zero content reads as a zero page (null), as the simulated guest's does.
  const guest = { readPage: (p: number) => (memory[p] === 0 ? null : memory[p]), collectDirty: () => new Uint32Array(0) };
  const s = new PageSender<number>(4096, batchPages, guest, ledger, metrics, new Pacer(0, 1 << 20));
  const order = new LinearOrder();
  const runs: PageRuns = {
    nextRun: (max) => order.nextRun(ledger.pending, max),
    get runLength() {
      return order.runLength;
    },
  };
  return { s, runs, metrics };
}

/** What a message says, copied out (a reused message's arrays change later). */
const contents = (m: Message<number> | null) => (m === null || m.type !== "pages" ? null : { pages: [...m.pages], data: [...m.data] });

describe("PageSender with messages handed back", () => {
  it("makes the messages, and books the counts, that it makes without", () => {
    // Over all runs: messages made again from one handed back (else the property tested nothing).
    let sameObject = 0;
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 300 }),
        fc.integer({ min: 1, max: 20 }),
        fc.array(fc.nat(5)),
        fc.array(fc.tuple(fc.constantFrom("batch", "request", "reply"), fc.nat(299)), { maxLength: 80 }),
        (pageCount, batchPages, mem, ops) => {
          const memory = Array.from({ length: pageCount }, (_, p) => mem[p % Math.max(1, mem.length)] ?? p);
          const plain = sender(pageCount, batchPages, memory);
          const reused = sender(pageCount, batchPages, memory);
          const seen = new Set<Message<number>>();
          for (const [op, at] of ops) {
            if (op === "request") {
              plain.s.request(at % pageCount);
              reused.s.request(at % pageCount);
              continue;
            }
            let a: Message<number> | null;
            let b: Message<number> | null;
            if (op === "batch") {
              const x = plain.s.batch(plain.runs, 0, false);
              const y = reused.s.batch(reused.runs, 0, false);
              expect(y.kind).toBe(x.kind);
              a = x.kind === "pages" ? x.msg : null;
              b = y.kind === "pages" ? y.msg : null;
              if (x.kind === "pages" && y.kind === "pages") expect([y.pages, y.bytes]).toEqual([x.pages, x.bytes]);
            } else {
              a = plain.s.demandReply("urgent");
              b = reused.s.demandReply("urgent");
            }
            expect(contents(b)).toEqual(contents(a));
            if (b !== null && b.type === "pages") {
              if (seen.has(b)) sameObject++;
              seen.add(b);
              // Delivered, taken in: the driver hands it back.
              reused.s.recycle(b as PagesMsg<number>);
            }
          }
          expect(reused.metrics).toEqual(plain.metrics);
        },
      ),
      SEED,
    );
    expect(sameObject).toBeGreaterThan(0);
  });

  it("reuses a message handed back, and never one still out", () => {
    const { s, runs } = sender(64, 4, Array.from({ length: 64 }, (_, p) => p + 1));
    const first = s.batch(runs, 0, false);
    if (first.kind !== "pages") throw new Error("no batch");
    const m1 = first.msg;
    const m2 = (s.batch(runs, 0, false) as { msg: Message<number> }).msg;
    expect(m2).not.toBe(m1);
    s.recycle(m1 as PagesMsg<number>);
    const m3 = (s.batch(runs, 0, false) as { msg: Message<number> }).msg;
    expect(m3).toBe(m1);
    expect(contents(m3)).toEqual({ pages: [8, 9, 10, 11], data: [9, 10, 11, 12] });
    // m2 was never handed back: untouched.
    expect(contents(m2)).toEqual({ pages: [4, 5, 6, 7], data: [5, 6, 7, 8] });
    s.request(40);
    const r1 = s.demandReply("urgent") as PagesMsg<number>;
    s.recycle(r1);
    s.request(41);
    const r2 = s.demandReply("urgent") as PagesMsg<number>;
    expect(r2).toBe(r1);
    expect(contents(r2)).toEqual({ pages: [41], data: [42] });
  });
});

describe("the link with reused events", () => {
  it("delivers every message sent, each once, in order per channel, through outages", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("bulk", "urgent", "down"), fc.integer({ min: 1, max: 20_000 }), fc.nat(400)), { maxLength: 120 }),
        (ops) => {
          const queue = new EventQueue<LinkEvent<number>>();
          const got: Record<string, number[]> = { bulk: [], urgent: [] };
          const link = new Link<number>(
            { bandwidthBytesPerSec: 1e9, latencyUs: 50 },
            { schedule: (t, ev) => queue.push(t, ev), transmitted: () => undefined, delivered: (_d, ch, msg) => got[ch].push(msg) },
            1 << 30,
          );
          const sent: Record<string, number[]> = { bulk: [], urgent: [] };
          let now = 0;
          let id = 0;
          const runTo = (t: number) => {
            while (queue.size > 0 && queue.peekTime() <= t) {
              const e = queue.pop();
              if (e) link.onEvent(e.event, e.time);
            }
          };
          for (const [op, bytes, gap] of ops) {
            now += gap;
            runTo(now);
            if (op === "down") {
              link.goDown(now);
              link.goUp();
              // What was out is lost: only what comes after counts.
              sent.bulk = [];
              sent.urgent = [];
              got.bulk = [];
              got.urgent = [];
              continue;
            }
            link.send(0, op, ++id, bytes, now);
            sent[op].push(id);
          }
          runTo(Infinity);
          expect(got.bulk).toEqual(sent.bulk);
          expect(got.urgent).toEqual(sent.urgent);
        },
      ),
      SEED,
    );
  });
});
