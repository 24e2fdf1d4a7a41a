/**
 * The standby plan's switchover step (src/engine/standby.ts) against the
 * eager one it replaced (kept below as the reference): over random histories
 * of onDirty / next / written / atSwitchover / held / stop, both plans give the
 * same operations (kinds, sequence numbers, pages, mark bytes), the same
 * figures and the same needed count after every step. The lacking set is
 * live, as the ledger's view is: it changes after the switchover (the push
 * takes pages out, a recovery puts some back), and neither plan may follow it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Bitmap } from "../src/engine/bitmap.js";
import { Complement, type PageSet } from "../src/engine/page-set.js";
import { StandbyPlan, type StandbyConfig, type StandbyFigures, type StandbyOp } from "../src/engine/standby.js";

/** The plan as it was before issue 9's change: its switchover step walks every page. */
class EagerPlan {
  readonly figures: StandbyFigures = { pagesWritten: 0, switchoverAt: null, neededAtSwitchover: 0, heldByDestination: 0, protectedAt: null };
  private readonly state: Uint8Array;
  private readonly inFlight = new Map<number, Uint32Array>();
  private readonly dirtiedInFlight = new Set<number>();
  private readonly inFlightPages: Bitmap;
  private readonly todo: Bitmap;
  private seq = 0;
  private cursor = 0;
  private needed: Bitmap | null = null;
  private mark: Uint8Array | null = null;
  private stopped = false;

  constructor(
    private readonly pageCount: number,
    private readonly config: StandbyConfig,
    private readonly tracking: boolean,
  ) {
    this.state = new Uint8Array(pageCount);
    this.inFlightPages = new Bitmap(pageCount);
    this.todo = Bitmap.full(pageCount);
  }

  get stillNeeded(): number | null {
    return this.needed?.count ?? null;
  }

  onDirty(pages: Uint32Array): void {
    for (const p of pages) {
      if (this.inFlightPages.has(p)) this.dirtiedInFlight.add(p);
      else if (this.state[p] === 1) {
        this.state[p] = 2;
        this.todo.set(p);
      }
    }
  }

  atSwitchover(lacking: PageSet, now: number): void {
    if (this.needed !== null || this.stopped) return;
    const valid = new Bitmap(this.pageCount);
    const needed = new Bitmap(this.pageCount);
    for (let p = 0; p < this.pageCount; p++) {
      const current = this.state[p] === 1 && !this.inFlightPages.has(p);
      if (current) valid.set(p);
      else if (lacking.has(p)) needed.set(p);
    }
    this.needed = needed;
    this.mark = valid.toBytes();
    this.cursor = this.pageCount - 1;
    this.figures.switchoverAt = now;
    this.figures.neededAtSwitchover = needed.count;
    if (needed.count === 0) this.figures.protectedAt = now;
  }

  held(pages: Uint32Array, now: number): void {
    const needed = this.needed;
    if (needed === null || this.figures.protectedAt !== null) return;
    for (const p of pages) if (p < this.pageCount && needed.clear(p)) this.figures.heldByDestination++;
    if (needed.count === 0) this.figures.protectedAt = now;
  }

  stop(): void {
    this.stopped = true;
  }

  next(): StandbyOp | null {
    if (this.stopped || this.inFlight.size >= this.config.maxInFlight) return null;
    if (this.mark !== null) {
      const op: StandbyOp = { kind: "mark", seq: this.seq++, valid: this.mark };
      this.mark = null;
      this.inFlight.set(op.seq, new Uint32Array(0));
      return op;
    }
    const pages = this.needed !== null ? this.nextNeeded() : this.tracking ? this.nextBefore() : [];
    if (pages.length === 0) return null;
    const batch = Uint32Array.from(pages);
    for (const p of batch) {
      this.inFlightPages.set(p);
      this.todo.clear(p);
    }
    const op: StandbyOp = { kind: "pages", seq: this.seq++, pages: batch };
    this.inFlight.set(op.seq, batch);
    return op;
  }

  written(seq: number, now: number): void {
    const pages = this.inFlight.get(seq);
    if (pages === undefined) return;
    this.inFlight.delete(seq);
    for (const p of pages) {
      this.inFlightPages.clear(p);
      if (this.dirtiedInFlight.delete(p)) {
        this.state[p] = 2;
        this.todo.set(p);
        continue;
      }
      this.state[p] = 1;
      this.figures.pagesWritten++;
      if (this.needed?.clear(p) === true && this.needed.count === 0 && this.figures.protectedAt === null) this.figures.protectedAt = now;
    }
  }

  private nextBefore(): number[] {
    const out: number[] = [];
    while (out.length < this.config.batchPages && out.length < this.todo.count) {
      const p = this.todo.nextSetWrapping(this.cursor);
      if (p < 0 || out.includes(p)) break;
      out.push(p);
      this.cursor = (p + 1) % this.pageCount;
    }
    return out;
  }

  private nextNeeded(): number[] {
    const needed = this.needed as Bitmap;
    const out: number[] = [];
    for (let p = this.cursor; p >= 0 && out.length < this.config.batchPages; p--) {
      if (needed.has(p) && !this.inFlightPages.has(p)) out.push(p);
      this.cursor = p - 1;
    }
    return out;
  }
}

type Step =
  | { k: "dirty"; pages: number[] }
  | { k: "next"; n: number }
  /** Completes the `i`-th oldest operation in flight (modulo their number), or an unknown seq. */
  | { k: "written"; i: number; unknown: boolean }
  /**
   * Lacking: every page, or the pages not in `sent` (a live Complement, as the ledger's); with
   * no list of them, the exact list, or a wrong one (a page short, one too many, out of order, one twice).
   */
  | { k: "switchover"; all: boolean; sent: number[]; list: "none" | "exact" | "short" | "extra" | "unsorted" | "repeat"; at: number }
  | { k: "held"; pages: number[] }
  /** Changes the lacking set after the fact (the push sends pages; a recovery unsends some). */
  | { k: "lackingChanges"; send: number[]; unsend: number[] }
  | { k: "stop" };

const MAX_PAGES = 150;

function step(pages: number, switchover = false): fc.Arbitrary<Step> {
  const page = fc.integer({ min: 0, max: pages + 3 });
  const inRange = fc.integer({ min: 0, max: pages - 1 });
  const sw: fc.Arbitrary<Step> = fc.record({
    k: fc.constant("switchover" as const),
    all: fc.boolean(),
    sent: fc.array(inRange, { maxLength: 2 * pages }),
    list: fc.constantFrom("none" as const, "exact" as const, "exact" as const, "short" as const, "extra" as const, "unsorted" as const, "repeat" as const),
    at: fc.nat(),
  });
  if (switchover) return sw;
  return fc.oneof(
    { weight: 20, arbitrary: fc.record({ k: fc.constant("dirty" as const), pages: fc.array(inRange, { maxLength: 12 }) }) },
    { weight: 30, arbitrary: fc.record({ k: fc.constant("next" as const), n: fc.integer({ min: 1, max: 4 }) }) },
    { weight: 25, arbitrary: fc.record({ k: fc.constant("written" as const), i: fc.nat(5), unknown: fc.boolean() }) },
    { weight: 2, arbitrary: sw },
    { weight: 10, arbitrary: fc.record({ k: fc.constant("held" as const), pages: fc.array(page, { maxLength: 16 }) }) },
    { weight: 10, arbitrary: fc.record({ k: fc.constant("lackingChanges" as const), send: fc.array(inRange, { maxLength: 10 }), unsend: fc.array(inRange, { maxLength: 4 }) }) },
    { weight: 1, arbitrary: fc.constant({ k: "stop" as const }) },
  );
}

const history = fc
  .record({
    pages: fc.integer({ min: 1, max: MAX_PAGES }),
    batchPages: fc.integer({ min: 1, max: 9 }),
    maxInFlight: fc.integer({ min: 1, max: 4 }),
    tracking: fc.boolean(),
  })
  // Most histories switch over once, after a stretch of copying (the copy holds current pages then), and go on after it.
  .chain((c) =>
    fc.record({
      c: fc.constant(c),
      steps: fc
        .tuple(fc.array(step(c.pages), { minLength: 5, maxLength: 80 }), fc.array(step(c.pages, true), { maxLength: 1 }), fc.array(step(c.pages), { maxLength: 60 }))
        .map(([a, b, d]) => [...a, ...b, ...d]),
    }),
  );

/** A list of the lacking pages for the plan's hint: exact, or wrong in one way (the plan must then not use it). */
function listOf(lacking: PageSet, how: Extract<Step, { k: "switchover" }>["list"], at: number, pages: number): Uint32Array | null {
  if (how === "none") return null;
  const l = Array.from(lacking);
  if (how === "short" && l.length > 0) l.splice(at % l.length, 1);
  if (how === "extra") {
    const notLacking = Array.from({ length: pages }, (_, p) => p).filter((p) => !lacking.has(p));
    if (notLacking.length > 0) {
      l.push(notLacking[at % notLacking.length]);
      l.sort((a, b) => a - b);
      // As many as the lacking pages: one dropped for the one added.
      l.splice(l.indexOf(notLacking[at % notLacking.length]) === 0 ? 1 : 0, 1);
    }
  }
  if (how === "repeat" && l.length > 1) l[(at % (l.length - 1)) + 1] = l[at % (l.length - 1)];
  if (how === "unsorted" && l.length > 1) [l[0], l[l.length - 1]] = [l[l.length - 1], l[0]];
  return Uint32Array.from(l);
}

const opForm = (op: StandbyOp | null) => (op === null ? null : op.kind === "mark" ? { kind: op.kind, seq: op.seq, valid: Array.from(op.valid) } : { kind: op.kind, seq: op.seq, pages: Array.from(op.pages) });

describe("standby plan: the switchover step without a pass over every page", () => {
  it("property: same operations, mark bytes, figures and needed count as the eager plan, over random histories", () => {
    let switchovers = 0;
    let partial = 0;
    fc.assert(
      fc.property(history, ({ c, steps }) => {
        const config = { batchPages: c.batchPages, maxInFlight: c.maxInFlight };
        const plan = new StandbyPlan(c.pages, config, c.tracking);
        const ref = new EagerPlan(c.pages, config, c.tracking);
        const inFlight: number[] = [];
        let sent: Bitmap | null = null;
        let now = 1;
        for (const s of steps) {
          now++;
          switch (s.k) {
            case "dirty": {
              const d = Uint32Array.from(s.pages);
              plan.onDirty(d);
              ref.onDirty(d);
              break;
            }
            case "next":
              for (let i = 0; i < s.n; i++) {
                const a = plan.next();
                const b = ref.next();
                expect(opForm(a)).toEqual(opForm(b));
                if (a !== null) inFlight.push(a.seq);
              }
              break;
            case "written": {
              const seq = s.unknown || inFlight.length === 0 ? 1e6 + s.i : inFlight.splice(s.i % inFlight.length, 1)[0];
              plan.written(seq, now);
              ref.written(seq, now);
              break;
            }
            case "switchover": {
              sent ??= new Bitmap(c.pages);
              if (!s.all) for (const p of s.sent) sent.set(p);
              const lacking = new Complement(sent);
              if (ref.figures.switchoverAt === null) {
                switchovers++;
                if (lacking.count < c.pages) partial++;
              }
              plan.atSwitchover(lacking, now, listOf(lacking, s.list, s.at, c.pages));
              ref.atSwitchover(lacking, now);
              break;
            }
            case "held": {
              const h = Uint32Array.from(s.pages);
              plan.held(h, now);
              ref.held(h, now);
              break;
            }
            case "lackingChanges":
              if (sent !== null) {
                for (const p of s.send) sent.set(p);
                for (const p of s.unsend) sent.clear(p);
              }
              break;
            case "stop":
              plan.stop();
              ref.stop();
              break;
          }
          expect(plan.figures).toEqual(ref.figures);
          expect(plan.stillNeeded).toBe(ref.stillNeeded);
          expect(plan.isProtecting).toBe(ref.figures.protectedAt !== null);
        }
        // Drain both to the end: the rest of the copy is the same too.
        for (let i = 0; i < 4 * MAX_PAGES && !(inFlight.length === 0 && i > 0); i++) {
          const a = plan.next();
          const b = ref.next();
          expect(opForm(a)).toEqual(opForm(b));
          if (a !== null) inFlight.push(a.seq);
          const seq = inFlight.shift();
          if (seq !== undefined) {
            plan.written(seq, ++now);
            ref.written(seq, now);
          }
          expect(plan.figures).toEqual(ref.figures);
          expect(plan.stillNeeded).toBe(ref.stillNeeded);
        }
      }),
      { numRuns: 600, seed: 9 },
    );
    // The histories reach both shapes of the needed set (every page lacking, some).
    expect(switchovers).toBeGreaterThan(300);
    expect(partial).toBeGreaterThan(150);
  });
});
