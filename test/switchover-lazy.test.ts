/**
 * The switchover's lazy structures (issue 9) give the pages the eager ones
 * gave: "pending" as a view of "not sent" instead of a bitmap made at the
 * pause, the stale list from the dirt since the last round instead of a walk
 * of every word, stop-and-copy's pages from that list instead of a scan.
 *
 * Two ways: the ledger beside a copy of the ledger as it was (its pending
 * bitmap, its walk), through random bookings in every mode's shape —
 * rounds, a pause, a push, recoveries; and whole migrations in the protocol
 * harness (every mode, outages and recoveries), each run twice — once as
 * the engine is, once with the lazy parts swapped back for the eager ones —
 * and every message compared, stale lists included. Last, that the pause's
 * handling no longer walks the guest's words at all.
 */
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { Bitmap, MODES, PageLedger, reconcileHeld, Source, type Channel, type Message, type MigrationOptions, type Mode, type RecoverInput } from "../src/engine/index.js";
import { resolveOptions } from "../src/engine/options.js";
import { SourceRounds } from "../src/engine/source-rounds.js";
import { Harness, type Op } from "./support/harness.js";

const SEED = { seed: 9_2026, numRuns: 300 };

/** The ledger's pending and stale pages as they were kept before (the offsets per page, as the ledger's own test models them). */
class EagerLedger {
  sent: Bitmap;
  readonly everSent: Bitmap;
  pending: Bitmap;
  readonly offsets: Float64Array;
  bulkOffset = 0;

  constructor(readonly size: number) {
    this.sent = new Bitmap(size);
    this.everSent = new Bitmap(size);
    this.pending = new Bitmap(size);
    this.offsets = new Float64Array(size).fill(-1);
  }

  markSent(p: number, channel: Channel): boolean {
    this.pending.clear(p);
    this.sent.set(p);
    this.offsets[p] = channel === "bulk" ? this.bulkOffset : -1;
    return !this.everSent.set(p);
  }

  dirtied(pages: Uint32Array): void {
    for (const p of pages) {
      this.sent.clear(p);
      this.pending.set(p);
    }
  }

  stale(): Uint32Array {
    return this.everSent.minus(this.sent);
  }

  pendAllUnsent(): void {
    this.pending = this.sent.complement();
  }

  reconcile(r: RecoverInput): number[] {
    const { held, mustDrop } = reconcileHeld(this.sent, { of: (p) => this.offsets[p] }, r);
    for (let p = 0; p < this.size; p++) if (this.offsets[p] !== -1 && this.offsets[p] >= r.bulkBytes) this.offsets[p] = -1;
    this.sent = held;
    this.bulkOffset = r.bulkBytes;
    this.pendAllUnsent();
    return mustDrop;
  }
}

type LedgerOp =
  | { op: "send"; page: number; bulk: boolean }
  | { op: "run"; first: number; len: number }
  | { op: "dirty"; pages: number[] }
  | { op: "pull"; bytes: number }
  | { op: "pause" }
  | { op: "recover"; resumed: boolean; back: number; received: number[] }
  | { op: "probe"; at: number; max: number };

const ledgerOp = (size: number): fc.Arbitrary<LedgerOp> =>
  fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant("send" as const), page: fc.nat(size - 1), bulk: fc.boolean() }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("run" as const), first: fc.nat(size - 1), len: fc.integer({ min: 1, max: 300 }) }) },
    // Unsorted, with repeats, sometimes long (past the dirt list's bound of 1024 entries).
    { weight: 3, arbitrary: fc.record({ op: fc.constant("dirty" as const), pages: fc.array(fc.nat(size - 1), { maxLength: 700 }) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("pull" as const), bytes: fc.integer({ min: 1, max: 5000 }) }) },
    { weight: 1, arbitrary: fc.constant<LedgerOp>({ op: "pause" }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("recover" as const), resumed: fc.boolean(), back: fc.nat(20_000), received: fc.array(fc.nat(size - 1), { maxLength: 200 }) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("probe" as const), at: fc.nat(size + 3), max: fc.integer({ min: 1, max: 400 }) }) },
  );

/** The lazy ledger's stale list, and whether it had to walk the words for it (only once its dirt list was given up). */
function staleOf(lazy: PageLedger): { pages: number[]; walked: boolean } {
  let walked = false;
  const ever = lazy.everSent as Bitmap & { minus: Bitmap["minus"] };
  ever.minus = function (other) {
    walked = true;
    return Bitmap.prototype.minus.call(this, other);
  };
  try {
    return { pages: [...lazy.stale()], walked };
  } finally {
    delete (ever as Partial<Bitmap>).minus;
  }
}

function expectSameLedger(lazy: PageLedger, eager: EagerLedger, probe?: { at: number; max: number }): void {
  expect(lazy.pending.count).toBe(eager.pending.count);
  expect([...lazy.pending]).toEqual([...eager.pending]);
  expect([...lazy.sent]).toEqual([...eager.sent]);
  const stale = staleOf(lazy);
  expect(stale.pages).toEqual([...eager.stale()]);
  // The list answers whenever it was kept: the walk is only for a list given up (too long, or after a recovery).
  if (stale.walked) expect((lazy as unknown as { dirt: unknown }).dirt).toBeNull();
  if (probe === undefined) return;
  const { at, max } = probe;
  expect(lazy.pending.has(at)).toBe(eager.pending.has(at));
  expect(lazy.pending.nextSet(at)).toBe(eager.pending.nextSet(at));
  expect(lazy.pending.nextSetWrapping(at)).toBe(eager.pending.nextSetWrapping(at));
  const p = eager.pending.nextSet(at);
  if (p >= 0) expect(lazy.pending.runFrom(p, max)).toBe(eager.pending.runFrom(p, max));
}

describe("the ledger's lazy pending and stale pages", () => {
  for (const mode of MODES) {
    it(`match the eager ones through ${mode}'s bookings, pauses and recoveries`, () => {
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 3000 }).chain((size) => fc.tuple(fc.constant(size), fc.array(ledgerOp(size), { maxLength: 60 }))),
          ([size, ops]) => {
            const lazy = new PageLedger(size);
            const eager = new EagerLedger(size);
            // Pre-copy and hybrid start with every page pending (nothing sent yet); post-copy with none until its pause.
            if (mode !== "postcopy") {
              lazy.pendAllUnsent();
              eager.pending.fill();
            }
            expectSameLedger(lazy, eager);
            for (const o of ops) {
              if (o.op === "send") expect(lazy.markSent(o.page, o.bulk ? "bulk" : "urgent")).toBe(eager.markSent(o.page, o.bulk ? "bulk" : "urgent"));
              else if (o.op === "run") {
                const end = Math.min(size, o.first + o.len);
                let resent = 0;
                for (let p = o.first; p < end; p++) if (eager.markSent(p, "bulk")) resent++;
                expect(lazy.markSentRun(o.first, end - o.first)).toBe(resent);
              } else if (o.op === "dirty") {
                lazy.dirtied(Uint32Array.from(o.pages));
                eager.dirtied(Uint32Array.from(o.pages));
              } else if (o.op === "pull") {
                lazy.bulkOffset += o.bytes;
                eager.bulkOffset += o.bytes;
              } else if (o.op === "pause") {
                expect([...lazy.stale()]).toEqual([...eager.stale()]);
                lazy.pendAllUnsent();
                eager.pendAllUnsent();
              } else if (o.op === "recover") {
                const received = new Bitmap(size);
                for (const p of o.received) received.set(p);
                const r = { resumed: o.resumed, bulkBytes: Math.max(0, eager.bulkOffset - o.back), received };
                expect(lazy.reconcile(r)).toEqual(eager.reconcile(r));
              }
              expectSameLedger(lazy, eager, o.op === "probe" ? o : undefined);
            }
          },
        ),
        SEED,
      );
    });
  }
});

// --------------------------------------------------------- whole migrations

interface Inside {
  own: Bitmap | null;
  pendingSet: unknown;
  sent: Bitmap;
  everSent: Bitmap;
  ascendingList: Uint32Array | null;
  listAt: number;
}
const ledgerProto = PageLedger.prototype as unknown as Record<string, unknown>;
const roundsProto = SourceRounds.prototype as unknown as Record<string, unknown>;
const lazyParts = { pendAllUnsent: ledgerProto.pendAllUnsent, stale: ledgerProto.stale, useList: roundsProto.useList };

/** Runs `f` with the engine's lazy parts swapped for the eager ones they replaced. */
function eagerly<T>(f: () => T): T {
  ledgerProto.pendAllUnsent = function (this: Inside) {
    this.own = this.sent.complement();
    this.pendingSet = this.own;
  };
  ledgerProto.stale = function (this: Inside) {
    return this.everSent.minus(this.sent);
  };
  roundsProto.useList = function (this: Inside) {
    this.ascendingList = null;
    this.listAt = 0;
  };
  try {
    return f();
  } finally {
    Object.assign(ledgerProto, { pendAllUnsent: lazyParts.pendAllUnsent, stale: lazyParts.stale });
    roundsProto.useList = lazyParts.useList;
  }
}
afterEach(() => {
  // A failed assertion inside `eagerly` still restores (finally); this only makes sure.
  expect(ledgerProto.stale).toBe(lazyParts.stale);
});

const opArb = (pages: number): fc.Arbitrary<Op> =>
  fc.oneof(
    { weight: 4, arbitrary: fc.record({ op: fc.constant("write" as const), page: fc.nat(pages - 1) }) },
    { weight: 2, arbitrary: fc.record({ op: fc.constant("read" as const), page: fc.nat(pages - 1) }) },
    { weight: 8, arbitrary: fc.record({ op: fc.constant("deliver" as const), pick: fc.nat(3) }) },
    { weight: 2, arbitrary: fc.constant<Op>({ op: "pauseDone" }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("wait" as const), us: fc.integer({ min: 1, max: 200_000 }) }) },
    { weight: 1, arbitrary: fc.constant<Op>({ op: "linkDown" }) },
    { weight: 1, arbitrary: fc.constant<Op>({ op: "linkUp" }) },
  );

const optionsArb = (mode: Mode) =>
  fc.record({
    mode: fc.constant(mode),
    urgentChannel: fc.boolean(),
    hybridRounds: fc.integer({ min: 1, max: 3 }),
    maxRounds: fc.integer({ min: 1, max: 4 }),
    // Small limits keep hybrid post-copy; 300 ms lets pre-copy and hybrid converge (stop-and-copy).
    downtimeLimitMs: fc.constantFrom(0.001, 1, 300),
  });

function migrate(pages: number, options: Partial<MigrationOptions>, ops: Op[]) {
  const h = new Harness(pages, options, 3, 2);
  for (const op of ops) h.apply(op);
  h.drain();
  const m = h.source.metrics;
  return { sent: h.sent, outcomes: [h.srcOutcome, h.dstOutcome], figures: [m.pagesSent, m.pagesResent, m.rounds.length, m.switchoverReason, m.recoveries], violations: h.violations };
}

describe("whole migrations, lazy against eager", () => {
  for (const mode of MODES) {
    it(`send the same messages and stale lists in ${mode}, through outages and recoveries`, () => {
      fc.assert(
        fc.property(optionsArb(mode), fc.constantFrom(24, 100), fc.array(opArb(100), { minLength: 30, maxLength: 300 }), (options, pages, raw) => {
          const ops = raw.map((o) => ("page" in o ? { ...o, page: o.page % pages } : o));
          const lazy = migrate(pages, options, ops);
          const eager = eagerly(() => migrate(pages, options, ops));
          expect(lazy.violations).toEqual([]);
          expect(lazy.sent).toEqual(eager.sent);
          expect(lazy.outcomes).toEqual(eager.outcomes);
          expect(lazy.figures).toEqual(eager.figures);
        }),
        { seed: 9_2027, numRuns: 150 },
      );
    });
  }
});

// ------------------------------------------------------------ no walk left

describe("the pause's handling", () => {
  const walks = ["minus", "complement", "fill", "clone"] as const;

  /** A source of `pageCount` pages brought to its pause, dirtying `dirty` pages at each collection after the first. */
  function toPause(mode: Mode, pageCount: number, dirty: number): Source<null> {
    const opts = resolveOptions({ mode, batchPages: 256, autoConverge: false, downtimeLimitMs: mode === "precopy" ? 1e9 : 1e-6 });
    let calls = 0;
    const guest = {
      readPage: () => null,
      collectDirty: () => (calls++ === 0 ? new Uint32Array(0) : Uint32Array.from({ length: dirty }, (_, i) => (i * 997 + calls) % pageCount)),
    };
    const src = new Source<null>(opts, { pageSize: 4096, pageCount }, guest);
    src.start(1);
    const hello = src.pollTransmit("bulk", 1) as Extract<Message<null>, { type: "hello" }>;
    src.handle({ kind: "message", msg: { type: "helloAck", version: hello.version, capabilities: hello.capabilities } }, 1);
    let now = 1;
    for (let paused = false; !paused; ) {
      for (let a = src.pollAction(); a !== null; a = src.pollAction()) if (a.kind === "pauseGuest") paused = true;
      if (!paused) src.pollTransmit("bulk", ++now);
    }
    return src;
  }

  for (const mode of MODES) {
    it(`in ${mode} walks no bitmap's words from the PAUSE reply to the switchover message`, () => {
      const src = toPause(mode, 1 << 20, 300);
      const bp = Bitmap.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
      const saved = walks.map((w) => bp[w]);
      const called: string[] = [];
      for (const w of walks) {
        const f = bp[w];
        bp[w] = function (this: unknown, ...a: unknown[]) {
          called.push(w);
          return f.apply(this, a);
        };
      }
      let msg: Message<null> | null = null;
      let words = 0;
      const nextClear = Bitmap.prototype.nextClear;
      try {
        // The scans that remain are bounded by the pages they find: count the words they step over.
        Bitmap.prototype.nextClear = function (this: Bitmap, from: number) {
          const r = nextClear.call(this, from);
          words += ((r < 0 ? this.size : r) >>> 5) - (from >>> 5);
          return r;
        };
        src.handle({ kind: "guestPaused", cpuState: new Uint8Array(8) }, 1e6);
        do msg = src.pollTransmit("bulk", 1e6);
        while (msg !== null && msg.type !== "switchover");
      } finally {
        walks.forEach((w, i) => (bp[w] = saved[i]));
        Bitmap.prototype.nextClear = nextClear;
      }
      expect(msg?.type).toBe("switchover");
      expect(called).toEqual([]);
      expect(words).toBe(0);
      if (mode === "hybrid") expect(msg !== null && msg.type === "switchover" && msg.stale.length).toBe(300 * 2);
    });
  }
});
