/**
 * The standby copy's plan at the source (issue 16): which pages to write to
 * the copy on shared storage, and when the copy protects the VM. Pure, like
 * the rest of the engine: the driver pulls write operations (`next`) while its
 * storage queue has room, does the I/O, and reports each one done
 * (`written`).
 *
 * Before switchover (modes with dirty tracking) the copy is filled in page
 * order while the guest runs; a page dirtied after its write was issued is
 * stale again. At switchover the copy must hold, current, every page the
 * destination lacks (`lacking`: what post-copy still has to push). A `mark`
 * operation records which pages of the copy were current at that moment;
 * everything written after it is current by construction (the source guest
 * is paused for good). Those pages are written from the highest page down —
 * the push goes the other way, so the copy and the push together cover the
 * guest soonest. A page the destination says it holds (`held`, from its
 * progress reports after the switchover) is no longer lacking: the copy need
 * not hold it, and is not written. The unprotected window runs from
 * switchover until every needed page is written or held — where the copy and
 * the push meet — or until the migration completes, if that comes first.
 */
import { Bitmap } from "./bitmap.js";
import type { PageSet } from "./page-set.js";
import { AllButValid, lackingNotValid, listedNotValid, type NeededPages } from "./standby-needed.js";
import type { StandbyFill } from "./standby-fill.js";
import type { StandbyReport } from "./report.js";

export interface StandbyConfig {
  /** Pages per write operation. */
  batchPages: number;
  /** Write operations the driver may have in flight at once. */
  maxInFlight: number;
}

export const DEFAULT_STANDBY: StandbyConfig = { batchPages: 64, maxInFlight: 4 };

/**
 * How often a destination reports its progress, and with it which pages it
 * holds (src/real/dest-session.ts sends it; the simulator models the same).
 * Each report can end the standby copy's unprotected window sooner, and costs
 * a guest PROGRESS call and a small JSON message.
 */
export const PROGRESS_REPORT_MS = 100;

export type StandbyOp =
  /** Write these pages' current content (and checksums) at their fixed offsets; `seq` orders every operation. */
  | { kind: "pages"; seq: number; pages: Uint32Array }
  /** Record that the switchover happened after operation `seq - 1`: `valid` (bitmap bytes) are the pages current in the copy then. */
  | { kind: "mark"; seq: number; valid: Uint8Array };

export interface StandbyFigures {
  pagesWritten: number;
  /** When the source guest paused for switchover (the window opens), µs. */
  switchoverAt: number | null;
  /** Pages the copy had to write after switchover (the destination lacked them and the copy's were not current). */
  neededAtSwitchover: number;
  /** Of those, pages the copy did not write because the destination said it held them first. */
  heldByDestination: number;
  /** When the copy first held every page the destination lacked, µs. */
  protectedAt: number | null;
}

export class StandbyPlan {
  readonly figures: StandbyFigures = { pagesWritten: 0, switchoverAt: null, neededAtSwitchover: 0, heldByDestination: 0, protectedAt: null };
  /**
   * Pages whose copy is current (written, not dirtied since). Frozen from the
   * switchover on: it is then the mark's content, and nothing after the
   * pause can make a copy stale (pages written after the mark are current by
   * construction).
   */
  private readonly current: Bitmap;
  /** Empty until the switchover: then what `needed` is made of (the pages taken out, or the needed pages themselves). */
  private readonly spare: Bitmap;
  private readonly inFlight = new Map<number, Uint32Array>();
  /** Pages of in-flight writes dirtied after the write was issued: stale once it completes. */
  private readonly dirtiedInFlight = new Set<number>();
  private readonly inFlightPages: Bitmap;
  /** Before switchover: pages whose copy is absent or stale and not in flight. */
  private readonly todo: Bitmap;
  private seq = 0;
  private cursor = 0;
  /** After switchover: pages still to write for protection. */
  private needed: NeededPages | null = null;
  /** The mark is due (pulled by the next `next`, which makes its bytes: after the switchover message is out, not inside the downtime). */
  private markDue = false;
  private stopped = false;

  constructor(
    private readonly pageCount: number,
    private readonly config: StandbyConfig,
    /** Whether the source tracks dirty pages before switchover (else the copy starts at switchover). */
    private readonly tracking: boolean,
  ) {
    if (!(config.batchPages >= 1 && config.maxInFlight >= 1)) throw new RangeError("standby: batchPages and maxInFlight must be ≥ 1");
    this.current = new Bitmap(pageCount);
    this.spare = new Bitmap(pageCount);
    this.inFlightPages = new Bitmap(pageCount);
    this.todo = Bitmap.full(pageCount);
  }

  /** Whether every page the destination lacked at switchover is in the copy. */
  get isProtecting(): boolean {
    return this.figures.protectedAt !== null;
  }

  /** Pages the copy still lacks for protection (after switchover), else null. */
  get stillNeeded(): number | null {
    return this.needed?.count ?? null;
  }

  /** Pages written since their write was issued: their copy is out of date. */
  onDirty(pages: Uint32Array): void {
    const frozen = this.needed !== null;
    for (const p of pages) {
      if (this.inFlightPages.has(p)) this.dirtiedInFlight.add(p);
      // After switchover nothing reads "current" but the mark, nor "todo": leave both.
      else if (!frozen && this.current.clear(p)) this.todo.set(p);
    }
  }

  /**
   * The source guest has paused for good; `lacking` are the pages the
   * destination does not hold. `listed`, when given, may be every one of them
   * in ascending order (a hybrid's stale list, once every page was sent): it
   * is used only if it is exactly that (checked, at a cost of its length).
   */
  atSwitchover(lacking: PageSet, now: number, listed: Uint32Array | null = null): void {
    if (this.needed !== null || this.stopped) return;
    // An in-flight write's content may predate the pause: written again, after the mark. (A page
    // in flight is never current — it was issued from `todo` — so this only keeps that true.)
    for (const batch of this.inFlight.values()) for (const p of batch) this.current.clear(p);
    // From here `current` is the mark's content. Post-copy lacks every page: the needed ones are a
    // view of it (nothing walked); otherwise a bitmap of its own, from the list or word by word (standby-needed.ts).
    const needed =
      lacking.count >= this.pageCount
        ? new AllButValid(this.current, this.spare)
        : (listedNotValid(listed, lacking, this.current, this.spare) ?? lackingNotValid(lacking, this.current, this.spare));
    this.needed = needed;
    this.markDue = true;
    this.cursor = this.pageCount - 1;
    this.figures.switchoverAt = now;
    this.figures.neededAtSwitchover = needed.count;
    if (needed.count === 0) this.figures.protectedAt = now;
  }

  /** After switchover: the destination holds `pages` (final content), so the copy need not. */
  held(pages: Uint32Array, now: number): void {
    const needed = this.needed;
    if (needed === null || this.figures.protectedAt !== null) return;
    for (const p of pages) if (p < this.pageCount && needed.clear(p)) this.figures.heldByDestination++;
    if (needed.count === 0) this.figures.protectedAt = now;
  }

  /** No more writes (the migration ended). */
  stop(): void {
    this.stopped = true;
  }

  /** The next operation for the storage queue, or null (none due, or enough in flight). */
  next(): StandbyOp | null {
    if (this.stopped || this.inFlight.size >= this.config.maxInFlight) return null;
    if (this.markDue) {
      // Post-copy's copy holds nothing at the switchover: a zeroed buffer, not a pass over the bitmap.
      const valid = this.current.count === 0 ? new Uint8Array(Math.ceil(this.pageCount / 8)) : this.current.toBytes();
      const op: StandbyOp = { kind: "mark", seq: this.seq++, valid };
      this.markDue = false;
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

  /** Operation `seq` is durable in the copy. */
  written(seq: number, now: number): void {
    const pages = this.inFlight.get(seq);
    if (pages === undefined) return;
    this.inFlight.delete(seq);
    for (const p of pages) {
      this.inFlightPages.clear(p);
      if (this.dirtiedInFlight.delete(p)) {
        this.todo.set(p);
        continue;
      }
      // After switchover "current" is the mark (frozen): a page written now is current by its sequence number.
      if (this.needed === null) this.current.set(p);
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
    const needed = this.needed as NeededPages;
    const out: number[] = [];
    // The cursor only moves down: the whole scan costs one pass over the pages.
    for (let p = this.cursor; p >= 0 && out.length < this.config.batchPages; p--) {
      if (needed.has(p) && !this.inFlightPages.has(p)) out.push(p);
      this.cursor = p - 1;
    }
    return out;
  }
}

/** The report's standby section from the source's figures, the destination's completion time and fill, and the death time. */
export function standbyReport(f: StandbyFigures, startedAt: number, completedAt: number | null, fill: StandbyFill | null, diedAt: number | null): StandbyReport {
  const closedAt = [f.protectedAt, completedAt].filter((t): t is number => t !== null && f.switchoverAt !== null && t >= f.switchoverAt);
  const end = closedAt.length > 0 ? Math.min(...closedAt) : null;
  const ms = (us: number) => Math.round(us) / 1000;
  return {
    pages_written: f.pagesWritten,
    opened_at_ms: f.switchoverAt === null ? null : ms(f.switchoverAt - startedAt),
    needed_at_switchover: f.neededAtSwitchover,
    held_by_destination: f.heldByDestination,
    window_ms: end === null || f.switchoverAt === null ? null : ms(end - f.switchoverAt),
    closed_by: end === null ? null : end === f.protectedAt ? "copy" : "completion",
    source_died_at_ms: diedAt === null ? null : ms(diedAt - startedAt),
    fill: fill === null ? null : { why: fill.why, missing: fill.missing, filled: fill.filled, lost: fill.lost?.length ?? fill.missing - fill.filled, lost_pages: fill.lost === null ? "" : pageRanges(fill.lost) },
  };
}

/** "3, 10–12, 40" for sorted pages; at most 64 ranges, then how many more. */
export function pageRanges(pages: Uint32Array): string {
  const out: string[] = [];
  let i = 0;
  while (i < pages.length && out.length < 64) {
    let j = i;
    while (j + 1 < pages.length && pages[j + 1] === pages[j] + 1) j++;
    out.push(i === j ? `${pages[i]}` : `${pages[i]}–${pages[j]}`);
    i = j + 1;
  }
  const rest = pages.length - i;
  return out.join(", ") + (rest > 0 ? ` and ${rest} more pages` : "");
}
