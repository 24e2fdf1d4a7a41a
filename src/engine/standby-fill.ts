/**
 * The destination's fill from the standby copy (issue 16): once the source
 * is given up for dead, every page the destination lacks is read from the
 * copy on shared storage; what comes back verified is installed like any
 * page, and whatever is still missing when the read ends is lost — named,
 * never papered over. Pure bookkeeping: the Destination decides when the
 * fill may begin (its guest runs, the operator asked for a copy) and acts on
 * what this says.
 */
import type { Bitmap } from "./bitmap.js";
import { pageRanges } from "./standby.js";

/** How a fill from the standby copy went. */
export interface StandbyFill {
  /** Why the destination turned to the copy. */
  why: string;
  /** Pages it lacked then. */
  missing: number;
  /** Pages installed from the copy, verified against its checksums. */
  filled: number;
  /** Pages neither here nor (current and intact) in the copy, in order; null until the fill ends. */
  lost: Uint32Array | null;
}

/** The pages not in `present`, in order. */
function absent(present: Bitmap, count: number): Uint32Array {
  const out: number[] = [];
  for (let p = present.nextClear(0); p >= 0 && p < count; p = present.nextClear(p + 1)) out.push(p);
  return Uint32Array.from(out);
}

export class FillFromStandby {
  private state: StandbyFill | null = null;

  /** The fill, once begun. */
  get fill(): StandbyFill | null {
    return this.state;
  }

  /** Whether pages from the copy are still welcome (begun, not ended). */
  get reading(): boolean {
    return this.state !== null && this.state.lost === null;
  }

  /** Begins the fill: the pages to read from the copy, or null if it began already. */
  begin(why: string, present: Bitmap, count: number): Uint32Array | null {
    if (this.state !== null) return null;
    const missing = absent(present, count);
    this.state = { why, missing: missing.length, filled: 0, lost: null };
    return missing;
  }

  /** Verified pages came from the copy. */
  received(pages: number): void {
    if (this.state !== null) this.state.filled += pages;
  }

  /**
   * The read is over. Returns the reason the VM is lost, naming the pages
   * still missing, or null when none is (the destination completed as the
   * last page came).
   */
  end(present: Bitmap, count: number): string | null {
    const f = this.state;
    if (f === null || f.lost !== null) return null;
    f.lost = absent(present, count);
    if (f.lost.length === 0) return null;
    return (
      `the VM is lost: ${f.why}, inside the unprotected window: ${f.lost.length} of ${count} pages are neither here ` +
      `nor, current and intact, in the standby copy: ${pageRanges(f.lost)}`
    );
  }

  /** Every page is present: the completion's reason (the fill, if any, lost nothing). */
  completed(): string {
    const f = this.state;
    if (f === null) return "every page is present";
    f.lost = new Uint32Array(0);
    return `${f.why}: ${f.filled} of the ${f.missing} missing pages came from the standby copy, each verified against its checksum; every page is present`;
  }
}
