/**
 * The simulated guest for workloads with several tasks per vCPU or with huge
 * pages (Guest in guest.ts stays the lean one for everything else, and runs
 * those byte for byte as before).
 *
 * Each vCPU runs its tasks round-robin, `sliceSteps` accesses each. Task t of
 * vCPU v is slot s = v + vcpus·t, with its own access stream and the pages
 * p ≡ s (mod slots) to write, so the memory a task leaves depends only on its
 * own steps, not on how the tasks interleave. A task that touches a missing
 * page parks. Without async faults its vCPU stops with it; with async faults
 * the vCPU switches to another runnable task (paying `switchUs`) and stops
 * only when every task waits. The parked access is retried when the task runs
 * again. The guest's fault log records vCPU stops, not task waits: that is
 * the blocktime a guest with async faults feels.
 */
import { AccessGenerator, compilePhases, type CompiledPhase } from "../workload/generator.js";
import type { Report } from "../engine/report.js";
import type { Workload } from "../workload/types.js";
import { ACCESS_US, type GuestShared, type StallHandler } from "./guest.js";
import { CollapseMap, isUnitInitiallyZero, unitShift } from "./huge-pages.js";

const STATE_MAGIC = 0x70707474; // "pptt"
/** Per slot: generator state, parked flag, retry flag, parked page, parked write; per vCPU: time to its next step, current task. */
const SLOT_STATE_BYTES = 64 + 8 * 4;
const VCPU_STATE_BYTES = 16;

export class TaskedGuest {
  readonly memory: Uint32Array;
  readonly present: Uint8Array | null;
  mirror: Uint32Array | null = null;
  running = false;
  throttle = 0;
  /** Destination: a stopped vCPU's wait for a core after the install that wakes it, µs (host-cpu.ts fault_wake_us). */
  wakeUs = 0;
  private scale = 1;
  private readonly vcpus: number;
  private readonly tasks: number;
  private readonly slots: number;
  private readonly taskPhases: CompiledPhase[][];
  private gens: AccessGenerator[] = [];
  private readonly asyncFaults: boolean;
  private readonly sliceSteps: number;
  private readonly switchUs: number;
  /** Base page → migration unit. */
  private readonly shift: number;
  /** split policy: per step, extra time on base pages (destination: until collapsed; source: while logging dirty pages). */
  private readonly slowdown: number;
  private readonly collapse: CollapseMap | null;
  // per vCPU
  private readonly nextAt: Float64Array;
  private readonly current: Uint8Array;
  private readonly sliceLeft: Float64Array;
  /** When the vCPU stopped (every task it may run is parked); NaN while it runs. */
  private readonly stoppedAt: Float64Array;
  // per slot
  private readonly stepUs: Float64Array;
  private readonly parked: Uint8Array;
  private readonly retry: Uint8Array;
  private readonly parkedPage: Float64Array;
  private readonly parkedAt: Float64Array;
  private readonly parkedWrite: Uint8Array;
  private parkedCount = 0;
  private tracking = false;
  private readonly dirtyBits: Uint8Array | null;
  private readonly dirtyList: Uint32Array | null;
  private dirtyCount = 0;

  /** `shared.workload` is the migration's view (huge-pages.ts migrationView); `base` the workload as written. */
  constructor(
    readonly role: "source" | "destination",
    private readonly shared: GuestShared,
    private readonly onStall: StallHandler,
    base: Workload,
  ) {
    const w = shared.workload;
    this.vcpus = w.vcpus;
    const extra = base.tasks?.extra ?? [];
    this.tasks = 1 + extra.length;
    this.slots = this.vcpus * this.tasks;
    this.taskPhases = [shared.phases as CompiledPhase[], ...extra.map((t) => compilePhases({ ...base, phases: t.phases }))];
    this.asyncFaults = base.tasks?.asyncFaults ?? false;
    this.sliceSteps = base.tasks?.sliceSteps ?? Infinity;
    this.switchUs = base.tasks?.switchUs ?? 0;
    this.shift = unitShift(base);
    const split = base.hugePages?.policy === "split";
    this.slowdown = split ? (base.hugePages as NonNullable<Workload["hugePages"]>).smallPageSlowdown : 0;
    this.collapse = split && role === "destination" ? new CollapseMap(base, (base.hugePages as NonNullable<Workload["hugePages"]>).collapseUs) : null;
    this.memory = new Uint32Array(w.pageCount);
    this.nextAt = new Float64Array(this.vcpus);
    this.current = new Uint8Array(this.vcpus);
    this.sliceLeft = new Float64Array(this.vcpus);
    this.stoppedAt = new Float64Array(this.vcpus).fill(NaN);
    this.stepUs = new Float64Array(this.slots);
    this.parked = new Uint8Array(this.slots);
    this.retry = new Uint8Array(this.slots);
    this.parkedPage = new Float64Array(this.slots);
    this.parkedAt = new Float64Array(this.slots);
    this.parkedWrite = new Uint8Array(this.slots);
    if (role === "source") {
      const pieces = 2 ** this.shift;
      for (let u = 0; u < w.pageCount; u++) if (!isUnitInitiallyZero(u, pieces, w.zeroShare)) this.memory[u] = u + 1;
      this.present = null;
      this.dirtyBits = new Uint8Array(w.pageCount);
      this.dirtyList = new Uint32Array(w.pageCount);
    } else {
      this.present = new Uint8Array(w.pageCount);
      this.dirtyBits = null;
      this.dirtyList = null;
    }
  }

  private makeGen(s: number): AccessGenerator {
    return new AccessGenerator(this.taskPhases[Math.floor(s / this.vcpus)], this.slots, s, this.shared.seed);
  }

  boot(now: number): void {
    this.gens = Array.from({ length: this.slots }, (_, s) => this.makeGen(s));
    for (let s = 0; s < this.slots; s++) this.stepUs[s] = this.gens[s].computeNs * 1e-3 + ACCESS_US;
    for (let v = 0; v < this.vcpus; v++) {
      this.current[v] = 0;
      this.sliceLeft[v] = this.sliceSteps;
      this.nextAt[v] = now + this.stepUs[v] * this.scale;
    }
    this.running = true;
  }

  setThrottle(ratio: number): void {
    this.throttle = ratio;
    this.scale = 1 / (1 - ratio);
  }

  runUntil(t: number): void {
    if (!this.running) return;
    const shared = this.shared;
    const progress = shared.progress.active ? shared.progress : null;
    const smallAtSource = this.present === null && this.tracking && this.slowdown > 0;
    for (let v = 0; v < this.vcpus; v++) {
      let at = this.nextAt[v];
      if (at > t || !Number.isNaN(this.stoppedAt[v])) continue;
      while (at <= t) {
        const s = v + this.vcpus * this.current[v];
        const gen = this.gens[s];
        let base: number;
        let write: boolean;
        if (this.retry[s] === 1) {
          this.retry[s] = 0;
          base = this.parkedPage[s];
          write = this.parkedWrite[s] === 1;
        } else {
          base = gen.next();
          write = gen.isWrite;
        }
        const u = base >>> this.shift;
        if (this.present !== null && this.present[u] === 0) {
          this.park(s, base, at, write);
          const next = this.asyncFaults ? this.runnableAfter(v) : -1;
          if (next < 0) {
            this.stoppedAt[v] = at;
            break;
          }
          this.current[v] = next;
          this.sliceLeft[v] = this.sliceSteps;
          at += this.switchUs;
          continue;
        }
        if (write) {
          const version = ++shared.lastVersion;
          this.memory[u] = version;
          if (this.mirror !== null) this.mirror[u] = version;
          if (this.tracking && (this.dirtyBits as Uint8Array)[u] === 0) {
            (this.dirtyBits as Uint8Array)[u] = 1;
            (this.dirtyList as Uint32Array)[this.dirtyCount++] = u;
          }
        }
        const done = this.stepUs[s];
        shared.workUs += done;
        shared.accesses++;
        if (progress !== null) progress.add(v, at, done);
        const small = smallAtSource || (this.collapse !== null && !this.collapse.isHuge(base, at));
        const step = gen.computeNs * 1e-3 + ACCESS_US;
        this.stepUs[s] = step;
        at += step * this.scale * (small ? 1 + this.slowdown : 1);
        if (this.tasks > 1 && --this.sliceLeft[v] <= 0) {
          this.sliceLeft[v] = this.sliceSteps;
          const next = this.runnableAfter(v);
          if (next >= 0 && next !== this.current[v]) {
            this.current[v] = next;
            at += this.switchUs;
          }
        }
      }
      this.nextAt[v] = at;
    }
  }

  /** The next runnable task of vCPU v after its current one (round-robin; the current one last), or -1. */
  private runnableAfter(v: number): number {
    const cur = this.current[v];
    for (let i = 1; i <= this.tasks; i++) {
      const k = (cur + i) % this.tasks;
      if (this.parked[v + this.vcpus * k] === 0) return k;
    }
    return -1;
  }

  private park(s: number, base: number, at: number, write: boolean): void {
    this.parked[s] = 1;
    this.parkedPage[s] = base;
    this.parkedAt[s] = at;
    this.parkedWrite[s] = write ? 1 : 0;
    this.parkedCount++;
    this.onStall(s, base >>> this.shift, at);
  }

  // ------------------------------------------------------------ source side

  readPage(page: number): number | null {
    const v = this.memory[page];
    return v === 0 ? null : v;
  }

  collectDirty(): Uint32Array {
    if (!this.tracking) {
      this.tracking = true;
      return new Uint32Array(0);
    }
    const bits = this.dirtyBits as Uint8Array;
    const list = (this.dirtyList as Uint32Array).slice(0, this.dirtyCount);
    for (let i = 0; i < list.length; i++) bits[list[i]] = 0;
    this.dirtyCount = 0;
    return list;
  }

  pause(now: number): Uint8Array {
    this.running = false;
    const bytes = new Uint8Array(8 + this.slots * SLOT_STATE_BYTES + this.vcpus * VCPU_STATE_BYTES);
    const view = new DataView(bytes.buffer);
    view.setUint32(0, STATE_MAGIC, true);
    view.setUint32(4, this.slots, true);
    for (let s = 0; s < this.slots; s++) {
      const off = 8 + s * SLOT_STATE_BYTES;
      this.gens[s].save(view, off);
      view.setFloat64(off + 64, this.parked[s], true);
      view.setFloat64(off + 72, this.retry[s], true);
      view.setFloat64(off + 80, this.parkedPage[s], true);
      view.setFloat64(off + 88, this.parkedWrite[s], true);
    }
    for (let v = 0; v < this.vcpus; v++) {
      const off = 8 + this.slots * SLOT_STATE_BYTES + v * VCPU_STATE_BYTES;
      view.setFloat64(off, Math.max(0, this.nextAt[v] - now), true);
      view.setFloat64(off + 8, this.current[v], true);
    }
    return bytes;
  }

  // ------------------------------------------------------- destination side

  resume(now: number, cpuState: Uint8Array): void {
    const view = new DataView(cpuState.buffer, cpuState.byteOffset, cpuState.byteLength);
    const size = 8 + this.slots * SLOT_STATE_BYTES + this.vcpus * VCPU_STATE_BYTES;
    if (cpuState.byteLength !== size || view.getUint32(0, true) !== STATE_MAGIC || view.getUint32(4, true) !== this.slots) {
      throw new Error(`guest: cpu state of ${cpuState.byteLength} bytes is not a state of this ${this.vcpus}-vCPU, ${this.tasks}-task workload`);
    }
    this.parkedCount = 0;
    for (let s = 0; s < this.slots; s++) {
      const off = 8 + s * SLOT_STATE_BYTES;
      const k = Math.floor(s / this.vcpus);
      this.gens[s] = AccessGenerator.restore(this.taskPhases[k], this.slots, s, this.shared.seed, view, off);
      this.stepUs[s] = this.gens[s].computeNs * 1e-3 + ACCESS_US;
      // The source never parks a task (all its pages are present): a saved state has none parked.
      this.parked[s] = 0;
      this.retry[s] = view.getFloat64(off + 72, true) === 1 ? 1 : 0;
      this.parkedPage[s] = view.getFloat64(off + 80, true);
      this.parkedWrite[s] = view.getFloat64(off + 88, true) === 1 ? 1 : 0;
    }
    for (let v = 0; v < this.vcpus; v++) {
      const off = 8 + this.slots * SLOT_STATE_BYTES + v * VCPU_STATE_BYTES;
      this.nextAt[v] = now + view.getFloat64(off, true);
      this.current[v] = Math.min(this.tasks - 1, view.getFloat64(off + 8, true));
      this.sliceLeft[v] = this.sliceSteps;
      this.stoppedAt[v] = NaN;
    }
    this.running = true;
  }

  install(page: number, version: number, now: number): void {
    const present = this.present as Uint8Array;
    if (this.collapse !== null && present[page] === 0) this.collapse.arrived(page, now);
    this.memory[page] = version;
    present[page] = 1;
    if (this.parkedCount > 0) this.wakePage(page, now);
  }

  /** Installs a batch of pages (`data[i]` null: a zero page), as `install` does each. */
  installBatch(pages: Uint32Array, data: readonly (number | null)[], now: number): void {
    for (let i = 0; i < pages.length; i++) this.install(pages[i], data[i] ?? 0, now);
  }

  drop(pages: Uint32Array): void {
    const present = this.present as Uint8Array;
    for (let i = 0; i < pages.length; i++) {
      if (this.collapse !== null && present[pages[i]] === 1) this.collapse.dropped(pages[i]);
      present[pages[i]] = 0;
    }
  }

  isPresent(page: number): boolean {
    return this.present === null || this.present[page] === 1;
  }

  /** Is task slot `s` parked on `page` since `at`? (The simulator's fault events name slots, not vCPUs.) */
  isStalledOn(s: number, page: number, at: number): boolean {
    return this.parked[s] === 1 && this.parkedPage[s] >>> this.shift === page && this.parkedAt[s] === at;
  }

  get stalledVcpus(): number {
    let n = 0;
    for (let v = 0; v < this.vcpus; v++) if (!Number.isNaN(this.stoppedAt[v])) n++;
    return n;
  }

  wakePage(page: number, now: number): void {
    for (let s = 0; s < this.slots; s++) {
      if (this.parked[s] === 1 && this.parkedPage[s] >>> this.shift === page) this.wake(s, now);
    }
  }

  /** Task slot s may run again; its vCPU, if stopped, resumes with it (never before it stopped). */
  wake(s: number, now: number): void {
    this.parked[s] = 0;
    this.parkedCount--;
    this.retry[s] = 1;
    const v = s % this.vcpus;
    const stopped = this.stoppedAt[v];
    if (Number.isNaN(stopped)) return;
    const at = Math.max(now, stopped);
    if (at > stopped) this.shared.faults.add(v, at - stopped);
    this.stoppedAt[v] = NaN;
    const k = Math.floor(s / this.vcpus);
    // Every task of it waited: the woken task's thread waits for a core before the vCPU runs (host-cpu.ts fault_wake_us).
    const runs = at > stopped ? at + this.wakeUs : at;
    this.nextAt[v] = k === this.current[v] ? runs : runs + this.switchUs;
    this.current[v] = k;
    this.sliceLeft[v] = this.sliceSteps;
  }
}

/**
 * With tasks, the engine's blocktime sums every task's wait (each faulting
 * access is a waiter); the vCPU blocktime the report means is the guest's:
 * time its vCPUs stood still because every task they could run waited.
 */
export function withVcpuBlocktime(r: Report, w: Workload): Report {
  const per = r.guest?.faults?.postcopy_vcpu_blocktime_ms;
  if (w.tasks === undefined || per === undefined) return r;
  return { ...r, blocktime_ms: Math.round(per.reduce((a, b) => a + b, 0) * 1000) / 1000 };
}
