/**
 * What the destination must end with, for `Simulation.verify`: the source's
 * memory at the switchover pause, plus every write the destination guest
 * makes afterwards (the destination guest writes into it as a mirror). Taken
 * when the source pauses for good; dropped if the source resumes its guest.
 */
import type { Guest } from "./guest.js";
import type { TaskedGuest } from "./async-faults.js";

export interface Verification {
  ok: boolean;
  mismatches: number;
  firstMismatch?: number;
}

export class ExpectedMemory {
  private expected: Uint32Array | null = null;

  constructor(
    private readonly source: Guest | TaskedGuest,
    private readonly destination: Guest | TaskedGuest,
    private readonly content = true,
  ) {}

  /** The source paused: from now on its memory, plus the destination's writes, is what must arrive. */
  take(): void {
    // Without tracked contents (SimConfig.trackContent) there is nothing to copy, and `verify` is not asked.
    if (!this.content) return;
    this.expected = this.source.memory.slice();
    this.destination.mirror = this.expected;
  }

  /** The source resumes its own guest: nothing is expected at the destination any more. */
  drop(): void {
    this.expected = null;
    this.destination.mirror = null;
  }

  /** Every page present at the destination and equal to what is expected (none taken: every page is a mismatch). */
  verify(pageCount: number): Verification {
    const expected = this.expected;
    if (expected === null) return { ok: false, mismatches: pageCount, firstMismatch: 0 };
    const guest = this.destination;
    const mem = guest.memory;
    let mismatches = 0;
    let first = -1;
    for (let p = 0; p < expected.length; p++) {
      if (mem[p] !== expected[p] || !guest.isPresent(p)) {
        if (first < 0) first = p;
        mismatches++;
      }
    }
    return first < 0 ? { ok: true, mismatches: 0 } : { ok: false, mismatches, firstMismatch: first };
  }
}
