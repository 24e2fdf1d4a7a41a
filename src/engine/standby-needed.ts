/**
 * What the standby copy still has to write after switchover (issue 9): the
 * pages the destination lacked then whose copy was not current, less those
 * written or held since. Made inside the downtime, so its making must not
 * grow with the guest: `StandbyPlan.atSwitchover` used to build it (and the
 * mark) by a pass over every page, 268 M of them for a 1 TiB guest.
 *
 * Two shapes, both frozen at the switchover whatever the lacking set does
 * afterwards (the push shrinks it, a recovery may grow it again):
 *  - every page lacking (post-copy: nothing was sent before the pause) — the
 *    pages the copy does not hold current, a view of the copy's own
 *    "current" bitmap (frozen from the switchover on) and of a bitmap of the
 *    pages taken out since: nothing is walked or made;
 *  - some pages lacking (hybrid) — a bitmap of their own: from the list of
 *    them when the caller has one (the ledger's stale list is every lacking
 *    page once every page was sent: O(pages dirtied since sent)); else filled
 *    run by run of the lacking set and word by word inside each run:
 *    O(pages / 32) word steps, not O(pages) calls.
 */
import type { Bitmap } from "./bitmap.js";
import type { PageSet } from "./page-set.js";

export interface NeededPages {
  readonly count: number;
  has(p: number): boolean;
  /** Takes `p` out (written or held); whether it was still needed. */
  clear(p: number): boolean;
}

/** Every page but those current in the copy at the switchover (`valid`, never changed again) and those taken out since (`out`, empty at first). */
export class AllButValid implements NeededPages {
  constructor(
    private readonly valid: Bitmap,
    private readonly out: Bitmap,
  ) {}

  get count(): number {
    return this.valid.size - this.valid.count - this.out.count;
  }

  has(p: number): boolean {
    return p < this.valid.size && !this.valid.has(p) && !this.out.has(p);
  }

  clear(p: number): boolean {
    return this.has(p) && this.out.set(p);
  }
}

/**
 * Sets in `into` (empty) every page of `listed` that `valid` does not hold,
 * if `listed` is exactly `lacking` (ascending, each page lacking, as many):
 * then returns `into`; else null, `into` holding some of those pages.
 */
export function listedNotValid(listed: Uint32Array | null, lacking: PageSet, valid: Bitmap, into: Bitmap): Bitmap | null {
  if (listed === null || listed.length !== lacking.count) return null;
  let prev = -1;
  for (const p of listed) {
    // What was set before a bad entry is lacking and not valid: the walk that follows sets it too.
    if (!(p > prev && p < valid.size && lacking.has(p))) return null;
    prev = p;
    if (!valid.has(p)) into.set(p);
  }
  return into;
}

/** Sets in `into` (empty, of the same size) every page of `lacking` that `valid` does not hold; returns `into`. */
export function lackingNotValid(lacking: PageSet, valid: Bitmap, into: Bitmap): Bitmap {
  const size = valid.size;
  for (let p = lacking.nextSet(0); p >= 0 && p < size; ) {
    const end = p + lacking.runFrom(p, size - p);
    // Inside the lacking run, alternate runs of valid pages (skipped) and of not valid ones (set), each bounded by the run.
    let q = p;
    while (q < end) {
      if (valid.has(q)) q += valid.runFrom(q, end - q);
      else {
        const r = valid.clearRunFrom(q, end - q);
        into.setRange(q, q + r);
        q += r;
      }
    }
    p = end < size ? lacking.nextSet(end) : -1;
  }
  return into;
}
