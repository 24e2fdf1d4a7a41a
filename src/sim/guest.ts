/**
 * The simulated guest: vCPUs running a workload's access streams over a
 * memory of page versions (0 = a zero page; every write stores a fresh
 * version, so a stale copy can never pass for a current one).
 *
 * One instance plays the source guest (dirty tracking, no missing pages) and
 * one the destination guest (a presence map; touching a missing page stalls
 * the vCPU). A vCPU is only ever affected by events, so `runUntil(t)` runs
 * each vCPU in a tight loop up to the next event time instead of scheduling
 * an event per access.
 */
import { AccessGenerator, GENERATOR_STATE_BYTES } from "../workload/generator.js";
import { isInitiallyZero } from "../workload/types.js";
import type { ProgressRecorder } from "../disruption/recorder.js";
import { anyBitIn, runEndIn, setBitsIn } from "../engine/bitmap.js";
import { ACCESS_US, type GuestShared, type StallHandler } from "./guest-shared.js";

export { ACCESS_US, GuestShared, type StallHandler } from "./guest-shared.js";

const STATE_MAGIC = 0x70707663; // "ppvc"
const VCPU_STATE_BYTES = GENERATOR_STATE_BYTES + 8;

export class Guest {
  /** Each page's version (empty when contents are not tracked: GuestShared.content). */
  readonly memory: Uint32Array;
  /**
   * Source without tracked contents: pages written since boot, one bit each
   * (a page is zero until written if it started zero); null otherwise.
   */
  private readonly written: Uint32Array | null;
  /**
   * Destination only: pages that are present, one bit each (page p is bit
   * p & 31 of word p >>> 5: an eighth of a byte map, so that a random access's
   * check mostly hits the cache); null at the source (all are).
   */
  private readonly present: Uint32Array | null;
  /** Receives every write too (the destination's writes into the expected final memory). */
  mirror: Uint32Array | null = null;
  running = false;
  throttle = 0;
  /**
   * Destination: how long a vCPU that stood still in a fault waits for a core
   * after the install that ended it, µs (the host's `fault_wake_us`, host-cpu.ts).
   */
  wakeUs = 0;
  private scale = 1;
  private gens: AccessGenerator[] = [];
  private readonly vcpus: number;
  /** Time of each vCPU's next access, µs. */
  private readonly nextAt: Float64Array;
  /** Unthrottled length of the step whose access is pending (compute + access), µs. */
  private readonly stepUs: Float64Array;
  private readonly stalled: Uint8Array;
  private readonly stalledPage: Float64Array;
  private readonly stalledAt: Float64Array;
  private readonly stalledWrite: Uint8Array;
  private stalledCount = 0;
  /**
   * The earliest `nextAt` of the vCPUs that are neither stalled nor past it
   * (Infinity: none): `runUntil` returns at once before it, so the many
   * events between two accesses cost no visit of every vCPU.
   */
  private earliest = Infinity;
  /**
   * A hint per page: some vCPU may be stalled on it. Set at every stall,
   * cleared when `wakePage` woke them all, so installing a page nobody waits
   * for does not scan the vCPUs.
   */
  private readonly stalledHint: Uint32Array | null;
  /** Source only: dirty tracking for `collectDirty`. */
  private tracking = false;
  /** One bit per page, as `present`. */
  private readonly dirtyBits: Uint32Array | null;
  /** The pages of `dirtyBits` in the order written; grown as needed (a round's dirty set is mostly a fraction of memory). */
  private dirtyList: Uint32Array | null;
  private dirtyCount = 0;

  constructor(
    readonly role: "source" | "destination",
    private readonly shared: GuestShared,
    private readonly onStall: StallHandler,
  ) {
    const w = shared.workload;
    this.vcpus = w.vcpus;
    this.memory = new Uint32Array(shared.content ? w.pageCount : 0);
    this.written = shared.content || role !== "source" ? null : new Uint32Array(Math.ceil(w.pageCount / 32));
    this.nextAt = new Float64Array(w.vcpus);
    this.stepUs = new Float64Array(w.vcpus);
    this.stalled = new Uint8Array(w.vcpus);
    this.stalledPage = new Float64Array(w.vcpus);
    this.stalledAt = new Float64Array(w.vcpus);
    this.stalledWrite = new Uint8Array(w.vcpus);
    if (role === "source") {
      if (shared.content) for (let p = 0; p < w.pageCount; p++) if (!isInitiallyZero(p, w.zeroShare)) this.memory[p] = p + 1;
      this.present = null;
      this.stalledHint = null;
      this.dirtyBits = new Uint32Array(Math.ceil(w.pageCount / 32));
      this.dirtyList = new Uint32Array(Math.min(w.pageCount, 1 << 16));
    } else {
      this.present = new Uint32Array(Math.ceil(w.pageCount / 32));
      this.stalledHint = new Uint32Array(Math.ceil(w.pageCount / 32));
      this.dirtyBits = null;
      this.dirtyList = null;
    }
  }

  /** Boots the workload from its first step (the source guest at time `now`). */
  boot(now: number): void {
    const { phases, seed } = this.shared;
    this.gens = Array.from({ length: this.vcpus }, (_, v) => new AccessGenerator(phases, this.vcpus, v, seed));
    for (let v = 0; v < this.vcpus; v++) this.scheduleStep(v, now);
    this.running = true;
    this.recomputeEarliest();
  }

  setThrottle(ratio: number): void {
    this.throttle = ratio;
    this.scale = 1 / (1 - ratio);
  }

  /** Performs every access due at or before `t`. A vCPU that meets a missing page stalls there. */
  runUntil(t: number): void {
    if (!this.running || t < this.earliest) return;
    const shared = this.shared;
    const mem = this.memory;
    const present = this.present;
    const mirror = this.mirror;
    const content = shared.content;
    const written = this.written;
    const dirtyBits = this.tracking ? this.dirtyBits : null;
    let dirtyList = this.dirtyList as Uint32Array;
    let dirtyCount = this.dirtyCount;
    const scale = this.scale;
    let version = shared.lastVersion;
    let work = 0;
    let accesses = 0;
    const progress = shared.progress.active ? shared.progress : null;
    let earliest = Infinity;
    for (let v = 0; v < this.vcpus; v++) {
      let at = this.nextAt[v];
      if (this.stalled[v] === 1) continue;
      if (at > t) {
        if (at < earliest) earliest = at;
        continue;
      }
      const gen = this.gens[v];
      let stepUs = this.stepUs[v];
      // Progress credited into the slot held until `slotHi` without the recorder's division (addHolding).
      const slots = progress !== null ? progress.slotsOf(v) : null;
      let slotHi = -Infinity;
      let slot = 0;
      let creditedAt = -Infinity;
      if (present === null && slots === null) {
        // The source's loop when no recorder is on (every pre-copy round): nothing can stall and
        // nothing is credited per slot, so the per-access work is the draw, the write and its dirty bit.
        while (at <= t) {
          const p = gen.next();
          if (gen.isWrite) {
            if (content) {
              mem[p] = ++version;
              if (mirror !== null) mirror[p] = version;
            } else if (written !== null) written[p >>> 5] |= 1 << (p & 31);
            if (dirtyBits !== null) {
              const word = dirtyBits[p >>> 5];
              const bit = 1 << (p & 31);
              if ((word & bit) === 0) {
                dirtyBits[p >>> 5] = word | bit;
                if (dirtyCount === dirtyList.length) dirtyList = this.growDirtyList();
                dirtyList[dirtyCount++] = p;
              }
            }
          }
          work += stepUs;
          accesses++;
          stepUs = gen.computeNs * 1e-3 + ACCESS_US;
          at += stepUs * scale;
        }
      }
      while (at <= t) {
        const p = gen.next();
        if (present !== null && (present[p >>> 5] & (1 << (p & 31))) === 0) {
          this.stall(v, p, at, gen.isWrite);
          break;
        }
        if (gen.isWrite) {
          if (content) {
            mem[p] = ++version;
            if (mirror !== null) mirror[p] = version;
          } else if (written !== null) written[p >>> 5] |= 1 << (p & 31);
          if (dirtyBits !== null && (dirtyBits[p >>> 5] & (1 << (p & 31))) === 0) {
            dirtyBits[p >>> 5] |= 1 << (p & 31);
            if (dirtyCount === dirtyList.length) dirtyList = this.growDirtyList();
            dirtyList[dirtyCount++] = p;
          }
        }
        work += stepUs;
        if (slots !== null) {
          if (at <= slotHi) {
            slots[slot] += stepUs;
            creditedAt = at;
          } else {
            slotHi = (progress as ProgressRecorder).addHolding(v, at, stepUs);
            slot = (progress as ProgressRecorder).heldSlot;
          }
        }
        accesses++;
        stepUs = gen.computeNs * 1e-3 + ACCESS_US;
        at += stepUs * scale;
      }
      if (progress !== null) progress.reach(creditedAt);
      this.nextAt[v] = at;
      this.stepUs[v] = stepUs;
      if (this.stalled[v] === 0 && at < earliest) earliest = at;
    }
    this.earliest = earliest;
    this.dirtyCount = dirtyCount;
    shared.lastVersion = version;
    shared.workUs += work;
    shared.accesses += accesses;
  }

  // ------------------------------------------------------------ source side

  /** A page's version, or null for a zero page (without tracked contents: 1 for every page that is not zero). */
  readPage(page: number): number | null {
    const written = this.written;
    if (written !== null) return (written[page >>> 5] & (1 << (page & 31))) !== 0 || !isInitiallyZero(page, this.shared.workload.zeroShare) ? 1 : null;
    const v = this.memory[page];
    return v === 0 ? null : v;
  }

  /** Pages written since the last call; the first call arms tracking. */
  collectDirty(): Uint32Array {
    if (!this.tracking) {
      this.tracking = true;
      return new Uint32Array(0);
    }
    const bits = this.dirtyBits as Uint32Array;
    const list = (this.dirtyList as Uint32Array).slice(0, this.dirtyCount);
    for (let i = 0; i < list.length; i++) bits[list[i] >>> 5] = 0;
    this.dirtyCount = 0;
    return list;
  }

  /** Stops the vCPUs at `now` (every access up to `now` done) and serialises their state. */
  pause(now: number): Uint8Array {
    this.running = false;
    const bytes = new Uint8Array(8 + this.vcpus * VCPU_STATE_BYTES);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, STATE_MAGIC, true);
    view.setUint32(4, this.vcpus, true);
    for (let v = 0; v < this.vcpus; v++) {
      const off = 8 + v * VCPU_STATE_BYTES;
      this.gens[v].save(view, off);
      // The step in progress keeps its remaining compute time across the move.
      view.setFloat64(off + GENERATOR_STATE_BYTES, Math.max(0, this.nextAt[v] - now), true);
    }
    return bytes;
  }

  // ------------------------------------------------------- destination side

  /** Starts the guest from a state serialised by `pause` (possibly of the other guest). */
  resume(now: number, cpuState: Uint8Array): void {
    const view = new DataView(cpuState.buffer, cpuState.byteOffset, cpuState.byteLength);
    if (cpuState.byteLength !== 8 + this.vcpus * VCPU_STATE_BYTES || view.getUint32(0, true) !== STATE_MAGIC || view.getUint32(4, true) !== this.vcpus) {
      throw new Error(`guest: cpu state of ${cpuState.byteLength} bytes is not a state of this ${this.vcpus}-vCPU workload`);
    }
    const { phases, seed } = this.shared;
    for (let v = 0; v < this.vcpus; v++) {
      const off = 8 + v * VCPU_STATE_BYTES;
      this.gens[v] = AccessGenerator.restore(phases, this.vcpus, v, seed, view, off);
      this.stepUs[v] = this.gens[v].computeNs * 1e-3 + ACCESS_US;
      this.nextAt[v] = now + view.getFloat64(off + GENERATOR_STATE_BYTES, true);
      this.stalled[v] = 0;
    }
    this.stalledCount = 0;
    this.running = true;
    this.recomputeEarliest();
  }

  /** Installs a page; wakes vCPUs stalled on it. */
  install(page: number, version: number, now: number): void {
    if (this.shared.content) this.memory[page] = version;
    (this.present as Uint32Array)[page >>> 5] |= 1 << (page & 31);
    if (this.stalledCount > 0 && this.mayBeStalledOn(page)) this.wakePage(page, now);
  }

  /** Installs a batch of pages (`data[i]` null: a zero page), as `install` does each. */
  installBatch(pages: Uint32Array, data: readonly (number | null)[], now: number): void {
    const mem = this.memory;
    const present = this.present as Uint32Array;
    const hint = this.stalledHint as Uint32Array;
    const content = this.shared.content;
    const n = pages.length;
    let i = 0;
    while (i < n) {
      // A run of consecutive pages nobody is stalled on (a background message, mostly): its presence bits word by word.
      const first = pages[i];
      const j = runEndIn(pages, i);
      const end = first + (j - i);
      if (j - i > 1 && (this.stalledCount === 0 || !anyBitIn(hint, first, end))) {
        if (content) for (let k = i; k < j; k++) mem[first + k - i] = data[k] ?? 0;
        setBitsIn(present, first, end);
        i = j;
        continue;
      }
      for (; i < j; i++) {
        const page = pages[i];
        if (content) mem[page] = data[i] ?? 0;
        present[page >>> 5] |= 1 << (page & 31);
        if (this.stalledCount > 0 && this.mayBeStalledOn(page)) this.wakePage(page, now);
      }
    }
  }

  drop(pages: Uint32Array): void {
    const present = this.present as Uint32Array;
    for (let i = 0; i < pages.length; i++) present[pages[i] >>> 5] &= ~(1 << (pages[i] & 31));
  }

  isPresent(page: number): boolean {
    return this.present === null || (this.present[page >>> 5] & (1 << (page & 31))) !== 0;
  }

  /** Is vCPU `v` stalled on `page` since `at` (that is, is its fault still pending)? */
  isStalledOn(v: number, page: number, at: number): boolean {
    return this.stalled[v] === 1 && this.stalledPage[v] === page && this.stalledAt[v] === at;
  }

  get stalledVcpus(): number {
    return this.stalledCount;
  }

  wakePage(page: number, now: number): void {
    if (!this.mayBeStalledOn(page)) return;
    for (let v = 0; v < this.vcpus; v++) {
      if (this.stalled[v] === 1 && this.stalledPage[v] === page) this.wake(v, now);
    }
    const hint = this.stalledHint as Uint32Array;
    hint[page >>> 5] &= ~(1 << (page & 31));
  }

  private mayBeStalledOn(page: number): boolean {
    return ((this.stalledHint as Uint32Array)[page >>> 5] & (1 << (page & 31))) !== 0;
  }

  /**
   * Retries the stalled access. A vCPU may have run ahead of the event being
   * processed (it stalled at a later time), so it never resumes before it stalled.
   */
  wake(v: number, now: number): void {
    const page = this.stalledPage[v];
    const installed = Math.max(now, this.stalledAt[v]);
    // It stood still: its thread slept and is only runnable again now, behind the host's busy threads.
    const at = installed > this.stalledAt[v] ? installed + this.wakeUs : installed;
    this.stalled[v] = 0;
    this.stalledCount--;
    if (this.stalledWrite[v] === 1 && this.shared.content) {
      const version = ++this.shared.lastVersion;
      this.memory[page] = version;
      if (this.mirror !== null) this.mirror[page] = version;
    }
    this.shared.workUs += this.stepUs[v];
    this.shared.progress.add(v, at, this.stepUs[v]);
    // A page installed before the fault was even handled never stopped the vCPU. The wait ends at the install, as the real engine books it.
    if (installed > this.stalledAt[v]) this.shared.faults.add(v, installed - this.stalledAt[v]);
    this.shared.accesses++;
    this.stepUs[v] = this.gens[v].computeNs * 1e-3 + ACCESS_US;
    this.nextAt[v] = at + this.stepUs[v] * this.scale;
    if (this.nextAt[v] < this.earliest) this.earliest = this.nextAt[v];
  }

  private stall(v: number, page: number, at: number, write: boolean): void {
    this.stalled[v] = 1;
    this.stalledPage[v] = page;
    this.stalledAt[v] = at;
    this.stalledWrite[v] = write ? 1 : 0;
    this.stalledCount++;
    (this.stalledHint as Uint32Array)[page >>> 5] |= 1 << (page & 31);
    this.onStall(v, page, at);
  }

  private recomputeEarliest(): void {
    let earliest = Infinity;
    for (let v = 0; v < this.vcpus; v++) if (this.stalled[v] === 0 && this.nextAt[v] < earliest) earliest = this.nextAt[v];
    this.earliest = earliest;
  }

  private growDirtyList(): Uint32Array {
    const old = this.dirtyList as Uint32Array;
    const list = new Uint32Array(Math.min(this.shared.workload.pageCount, old.length * 2));
    list.set(old);
    this.dirtyList = list;
    return list;
  }

  private scheduleStep(v: number, now: number): void {
    this.stepUs[v] = this.gens[v].computeNs * 1e-3 + ACCESS_US;
    this.nextAt[v] = now + this.stepUs[v] * this.scale;
  }
}
