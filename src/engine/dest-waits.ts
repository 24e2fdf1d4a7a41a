/**
 * The destination's waiting books: each page a vCPU faulted on and that is
 * not yet installed, with every waiting vCPU and the time it faulted, in the
 * order they faulted. Every demand fault passes through here twice (the
 * fault, then its page's arrival), so nothing here allocates per fault:
 * a page's entry is a slot in typed arrays found by an open-addressing
 * table, its waiters a linked list of records, both reused through free
 * lists. (A Map of an object and two arrays per page cost a Map insert and
 * delete — whose table fills with deleted entries and is rebuilt — and
 * three objects per fault.)
 *
 * Bounded by what the caller puts in: one slot per distinct waiting page,
 * one record per fault; the arrays double when full.
 */

/** No slot, no record. */
export const EMPTY = -1;

export class PageWaits {
  /** Open addressing, linear probing: the page of each cell and its slot (EMPTY: a free cell). */
  private cellPage = new Float64Array(16);
  private cellSlot = new Int32Array(16).fill(EMPTY);
  private cellMask = 15;
  /** 32 − log2 of the cell count: a page's home cell is the top bits of its hash. */
  private cellShift = 28;
  private entries = 0;

  /** Per slot: the page, when its entry was made (for the order of `pages`), its first and last waiter record. */
  private slotPage = new Float64Array(8);
  private slotSeq = new Float64Array(8);
  private slotHead = new Int32Array(8);
  private slotTail = new Int32Array(8);
  /** Free slots, a stack. */
  private freeSlots = new Int32Array(8);
  private freeSlotCount = 0;
  private slotsUsed = 0;
  private seq = 0;

  /** Per record: the fault's time, the vCPU, the next record of the same page (EMPTY: last). */
  private recAt = new Float64Array(8);
  private recVcpu = new Float64Array(8);
  private recNext = new Int32Array(8);
  /** Free records, linked through recNext. */
  private freeRec = EMPTY;
  private recsUsed = 0;

  get size(): number {
    return this.entries;
  }

  /** The slot of `page`, or EMPTY (-1) when no vCPU waits on it. */
  find(page: number): number {
    const mask = this.cellMask;
    for (let c = this.home(page); ; c = (c + 1) & mask) {
      const s = this.cellSlot[c];
      if (s === EMPTY) return EMPTY;
      if (this.cellPage[c] === page) return s;
    }
  }

  /** The first vCPU waits on `page` (which has no entry), from `at`. */
  add(page: number, vcpu: number, at: number): void {
    if ((this.entries + 1) * 2 > this.cellMask + 1) this.growCells();
    const slot = this.newSlot();
    this.slotPage[slot] = page;
    this.slotSeq[slot] = this.seq++;
    const r = this.newRecord(vcpu, at);
    this.slotHead[slot] = r;
    this.slotTail[slot] = r;
    this.place(page, slot);
    this.entries++;
  }

  /** Another vCPU waits on the page of `slot`, from `at`. */
  join(slot: number, vcpu: number, at: number): void {
    const r = this.newRecord(vcpu, at);
    this.recNext[this.slotTail[slot]] = r;
    this.slotTail[slot] = r;
  }

  /** When the first vCPU waiting in `slot` faulted. */
  firstFaultAt(slot: number): number {
    return this.recAt[this.slotHead[slot]];
  }

  /** The first waiter record of `slot` (then `nextWaiter` until EMPTY), in the order the vCPUs faulted. */
  firstWaiter(slot: number): number {
    return this.slotHead[slot];
  }

  nextWaiter(record: number): number {
    return this.recNext[record];
  }

  waiterVcpu(record: number): number {
    return this.recVcpu[record];
  }

  waiterAt(record: number): number {
    return this.recAt[record];
  }

  /** The page of `slot` arrived: its entry and waiter records are free again. */
  remove(slot: number): void {
    let r = this.slotHead[slot];
    while (r !== EMPTY) {
      const next = this.recNext[r];
      this.recNext[r] = this.freeRec;
      this.freeRec = r;
      r = next;
    }
    this.unplace(this.slotPage[slot]);
    this.entries--;
    if (this.freeSlotCount === this.freeSlots.length) this.freeSlots = grownInt(this.freeSlots);
    this.freeSlots[this.freeSlotCount++] = slot;
  }

  /** The pages waited on, in the order their first vCPU faulted (as a Map's keys would come). */
  pages(): number[] {
    const live: number[] = [];
    for (let c = 0; c <= this.cellMask; c++) if (this.cellSlot[c] !== EMPTY) live.push(this.cellSlot[c]);
    live.sort((a, b) => this.slotSeq[a] - this.slotSeq[b]);
    return live.map((s) => this.slotPage[s]);
  }

  private newSlot(): number {
    if (this.freeSlotCount > 0) return this.freeSlots[--this.freeSlotCount];
    if (this.slotsUsed === this.slotPage.length) {
      this.slotPage = grownFloat(this.slotPage);
      this.slotSeq = grownFloat(this.slotSeq);
      this.slotHead = grownInt(this.slotHead);
      this.slotTail = grownInt(this.slotTail);
    }
    return this.slotsUsed++;
  }

  private newRecord(vcpu: number, at: number): number {
    let r = this.freeRec;
    if (r !== EMPTY) this.freeRec = this.recNext[r];
    else {
      if (this.recsUsed === this.recAt.length) {
        this.recAt = grownFloat(this.recAt);
        this.recVcpu = grownFloat(this.recVcpu);
        this.recNext = grownInt(this.recNext);
      }
      r = this.recsUsed++;
    }
    this.recAt[r] = at;
    this.recVcpu[r] = vcpu;
    this.recNext[r] = EMPTY;
    return r;
  }

  private place(page: number, slot: number): void {
    const mask = this.cellMask;
    let c = this.home(page);
    while (this.cellSlot[c] !== EMPTY) c = (c + 1) & mask;
    this.cellPage[c] = page;
    this.cellSlot[c] = slot;
  }

  /** Takes `page`'s cell out, shifting back the cells after it that probed past it (no tombstones, so lookups stay short). */
  private unplace(page: number): void {
    const mask = this.cellMask;
    let c = this.home(page);
    while (this.cellPage[c] !== page || this.cellSlot[c] === EMPTY) c = (c + 1) & mask;
    let hole = c;
    for (let n = (hole + 1) & mask; this.cellSlot[n] !== EMPTY; n = (n + 1) & mask) {
      const home = this.home(this.cellPage[n]);
      // The cell at n may fill the hole when its home is not in (hole, n] (cyclically).
      if ((n > hole && (home <= hole || home > n)) || (n < hole && home <= hole && home > n)) {
        this.cellPage[hole] = this.cellPage[n];
        this.cellSlot[hole] = this.cellSlot[n];
        hole = n;
      }
    }
    this.cellSlot[hole] = EMPTY;
  }

  /** Fibonacci hashing (page numbers are below 2^32): consecutive pages land far apart. */
  private home(page: number): number {
    return Math.imul(page | 0, 0x9e3779b1) >>> this.cellShift;
  }

  private growCells(): void {
    const pages = this.cellPage;
    const slots = this.cellSlot;
    const size = (this.cellMask + 1) * 2;
    this.cellPage = new Float64Array(size);
    this.cellSlot = new Int32Array(size).fill(EMPTY);
    this.cellMask = size - 1;
    this.cellShift--;
    for (let c = 0; c < slots.length; c++) if (slots[c] !== EMPTY) this.place(pages[c], slots[c]);
  }
}


function grownFloat(a: Float64Array): Float64Array<ArrayBuffer> {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

function grownInt(a: Int32Array): Int32Array<ArrayBuffer> {
  const b = new Int32Array(a.length * 2);
  b.set(a);
  return b;
}
