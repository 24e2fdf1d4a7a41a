/**
 * Huge pages in the simulator. The workload's access streams stay at its
 * base `page_size` (a sequential scan still touches 4 KiB after 4 KiB); what
 * the huge-page policy changes is the unit the migration works in and what
 * the guest pays for running on base pages.
 *
 * - "whole" (hugetlbfs): the engine's page is the huge page. A 4 KiB access
 *   touches unit p >> shift: one fault, one transfer, one dirty bit and one
 *   zero check per huge page (a huge page is zero only if every piece is).
 * - "split" (THP): the engine moves base pages. The destination maps a huge
 *   page with base pages until all its pieces are present, and collapses it
 *   `collapseUs` after the last one arrived; until then each step touching it
 *   takes `smallPageSlowdown` longer. The source runs on base pages while
 *   dirty logging is armed (KVM splits huge mappings to log at 4 KiB).
 */
import { isInitiallyZero, type Workload } from "../workload/types.js";

/** The workload as the engine and the guest memory see it: pages of the migration's unit. */
export function migrationView(w: Workload): Workload {
  const h = w.hugePages;
  if (h === undefined || h.policy !== "whole") return w;
  return { ...w, pageSize: h.size, pageCount: w.memBytes / h.size };
}

/** log2(units per base page): accesses (base pages) map to units by `p >>> shift`. */
export function unitShift(w: Workload): number {
  const h = w.hugePages;
  return h === undefined || h.policy !== "whole" ? 0 : Math.log2(h.size / w.pageSize);
}

/** The initial content of unit u of `pieces` base pages: zero only if every piece is. */
export function isUnitInitiallyZero(u: number, pieces: number, zeroShare: number): boolean {
  if (pieces === 1) return isInitiallyZero(u, zeroShare);
  if (zeroShare <= 0) return false;
  for (let p = u * pieces; p < (u + 1) * pieces; p++) if (!isInitiallyZero(p, zeroShare)) return false;
  return true;
}

/**
 * The split policy's mapping state at the destination: pieces present per
 * huge page and when it was collapsed (Infinity: still on base pages).
 */
export class CollapseMap {
  readonly pieces: number;
  private readonly shift: number;
  private readonly have: Uint32Array;
  private readonly collapseAt: Float64Array;
  collapsed = 0;

  constructor(
    w: Workload,
    private readonly collapseUs: number,
  ) {
    const h = w.hugePages as NonNullable<Workload["hugePages"]>;
    this.pieces = h.size / w.pageSize;
    this.shift = Math.log2(this.pieces);
    const n = w.memBytes / h.size;
    this.have = new Uint32Array(n);
    this.collapseAt = new Float64Array(n).fill(Infinity);
  }

  /** Base page p became present at `now`. */
  arrived(p: number, now: number): void {
    const h = p >>> this.shift;
    if (++this.have[h] === this.pieces) {
      this.collapseAt[h] = now + this.collapseUs;
      this.collapsed++;
    }
  }

  /** Base page p was dropped (stale): its huge page is split again. */
  dropped(p: number): void {
    const h = p >>> this.shift;
    if (this.have[h] === this.pieces) this.collapsed--;
    this.have[h]--;
    this.collapseAt[h] = Infinity;
  }

  /** Is base page p mapped by a huge page at time `at`? */
  isHuge(p: number, at: number): boolean {
    return at >= this.collapseAt[p >>> this.shift];
  }
}
