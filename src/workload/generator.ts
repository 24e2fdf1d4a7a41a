/**
 * The access stream of one vCPU (SPEC.md): which page each step touches and
 * whether it writes it. Called tens of millions of times per simulation, so a
 * step allocates nothing: the result lands in the `page` and `isWrite` fields.
 */
import seedrandom from "seedrandom";
import { compileTrace, positionOf, type CompiledTrace, type ReplayProgram } from "./trace-replay.js";
import { regionPages, type Workload } from "./types.js";
import { ZipfSampler } from "./zipf.js";

const SEQUENTIAL = 0;
const UNIFORM = 1;
const HOTCOLD = 2;
const ZIPF = 3;
const KIND_CODE = { sequential: SEQUENTIAL, uniform: UNIFORM, hotcold: HOTCOLD, zipf: ZIPF } as const;

/** A phase reduced to the numbers the inner loop needs; shared by every vCPU of a workload. */
export interface CompiledPhase {
  steps: number;
  computeNs: number;
  writeShare: number;
  kind: number;
  start: number;
  end: number;
  len: number;
  stride: number;
  hotLen: number;
  coldLen: number;
  hotAccess: number;
  zipf: ZipfSampler | null;
  /** A trace phase: what it replays (then the pattern fields are unused). */
  trace: CompiledTrace | null;
}

/** Page numbers stay below 2^31, so the generator's arithmetic on them is integer arithmetic. */
const MAX_PAGES = 2 ** 31 - 1;

export function compilePhases(w: Workload): CompiledPhase[] {
  if (!(w.pageCount <= MAX_PAGES)) throw new RangeError(`workload "${w.name}": ${w.pageCount} pages; the simulator handles at most ${MAX_PAGES}`);
  return w.phases.map((ph, i) => {
    const { start, end } = regionPages(ph.pattern.region, w.pageCount);
    const len = end - start;
    const hotLen = Math.min(len, Math.max(1, Math.floor(ph.pattern.hotShare * len)));
    return {
      steps: ph.steps,
      computeNs: ph.computeNs,
      writeShare: ph.writeShare,
      kind: KIND_CODE[ph.pattern.kind],
      start,
      end,
      len,
      stride: ph.pattern.stride,
      hotLen,
      coldLen: len - hotLen,
      hotAccess: ph.pattern.hotAccess,
      zipf: ph.trace === undefined && ph.pattern.kind === "zipf" ? new ZipfSampler(len, ph.pattern.exponent) : null,
      trace: ph.trace === undefined ? null : compileTrace(ph.trace, ph.pattern.region, w.pageCount, w.vcpus, `workload "${w.name}", phases[${i}]`),
    };
  });
}

type AleaState = seedrandom.State.Alea;

/** Bytes of one generator's saved state (see `save`). */
export const GENERATOR_STATE_BYTES = 8 * 8;

export class AccessGenerator {
  /** The page of the last access drawn by `next`. */
  page = 0;
  /** Whether that access writes (always a page this vCPU owns). */
  isWrite = false;
  /** Accesses drawn so far, over all phases. */
  steps = 0;
  phaseIndex = 0;
  stepInPhase = 0;
  /** sequential: the next page. */
  cursor = 0;
  private phase: CompiledPhase;
  /** Steps of the current phase for this vCPU (a trace phase: one pass of its copies). */
  private phaseSteps = 0;
  private nextNs = 0;
  /** Trace phases: this vCPU's program and its position (window, copy, access in the window). */
  private prog: ReplayProgram | null = null;
  private tw = 0;
  private tc = 0;
  private ta = 0;
  /**
   * seedrandom's Alea state, stepped here by the same arithmetic as its
   * `next` (seeded by seedrandom itself): the generator draws up to three
   * numbers per access, and a method on its own fields is cheaper to call
   * than the library's closure over its object.
   */
  private c = 0;
  private s0 = 0;
  private s1 = 0;
  private s2 = 0;
  private readonly rand = (): number => this.random();

  constructor(
    private readonly phases: readonly CompiledPhase[],
    private readonly vcpus: number,
    readonly vcpu: number,
    seed: number,
    state?: AleaState,
  ) {
    const s = seedrandom.alea(`${seed}:${vcpu}`, { state: state ?? true }).state();
    this.c = s.c;
    this.s0 = s.s0;
    this.s1 = s.s1;
    this.s2 = s.s2;
    this.phase = phases[0];
    this.enterPhase();
  }

  /** Compute time before the next access, in ns (unthrottled). */
  get computeNs(): number {
    return this.nextNs;
  }

  /** Draws the next access into `page` / `isWrite` and returns the page. */
  next(): number {
    const ph = this.phase;
    if (this.prog !== null) return this.nextTraced(ph, this.prog);
    const wantsWrite = ph.writeShare >= 1 || (ph.writeShare > 0 && this.random() < ph.writeShare);
    let p: number;
    switch (ph.kind) {
      case SEQUENTIAL:
        p = this.cursor;
        this.cursor += ph.stride;
        if (this.cursor >= ph.end) this.cursor = ph.start + ((this.cursor - ph.start) % ph.len);
        break;
      // `| 0` is Math.floor here (non-negative, below 2^31: compilePhases checks), and keeps p a small integer, so the ownership rule's `%` below is an integer remainder, not a float one.
      case UNIFORM:
        p = ph.start + ((this.random() * ph.len) | 0);
        break;
      case HOTCOLD:
        p = ph.coldLen === 0 || this.random() < ph.hotAccess
          ? ph.start + ((this.random() * ph.hotLen) | 0)
          : ph.start + ph.hotLen + ((this.random() * ph.coldLen) | 0);
        break;
      default:
        p = ph.start + (ph.zipf as ZipfSampler).sample(this.rand) - 1;
    }
    this.isWrite = false;
    if (wantsWrite) {
      // Ownership rule: only vCPU v writes pages p ≡ v (mod vcpus).
      let q = p - (p % this.vcpus) + this.vcpu;
      if (q < ph.start || q >= ph.end) q -= this.vcpus;
      if (q >= ph.start && q < ph.end) {
        p = q;
        this.isWrite = true;
      }
    }
    this.page = p;
    this.steps++;
    if (++this.stepInPhase === this.phaseSteps) this.nextPhase();
    return p;
  }

  /** SPEC.md: the access of the current trace position, on this vCPU's own frames; then one position on. */
  private nextTraced(ph: CompiledPhase, prog: ReplayProgram): number {
    const t = ph.trace as CompiledTrace;
    const p = t.base + (this.tc * t.slot + prog.frames[prog.start[this.tw] + this.ta]) * this.vcpus + this.vcpu;
    this.isWrite = this.ta >= prog.writeFrom[this.tw];
    this.page = p;
    this.steps++;
    if (++this.stepInPhase === this.phaseSteps) {
      if (t.loop) {
        this.stepInPhase = 0;
        this.enterPhase();
      } else this.nextPhase();
      return p;
    }
    if (++this.ta === prog.start[this.tw + 1] - prog.start[this.tw]) {
      this.ta = 0;
      if (++this.tc === t.copies) {
        this.tc = 0;
        do this.tw++;
        while (prog.start[this.tw + 1] === prog.start[this.tw]);
        this.nextNs = prog.windowNs[this.tw] / (prog.start[this.tw + 1] - prog.start[this.tw]);
      }
    }
    return p;
  }

  /** Alea's step (seedrandom lib/alea.js): a number in [0, 1). */
  private random(): number {
    const t = 2091639 * this.s0 + this.c * 2.3283064365386963e-10; // 2^-32
    this.s0 = this.s1;
    this.s1 = this.s2;
    this.c = t | 0;
    return (this.s2 = t - this.c);
  }

  private nextPhase(): void {
    this.stepInPhase = 0;
    this.phaseIndex = this.phaseIndex + 1 === this.phases.length ? 0 : this.phaseIndex + 1;
    this.phase = this.phases[this.phaseIndex];
    this.enterPhase();
  }

  /** Writes the generator's position and random state at `offset`. */
  save(view: DataView, offset: number): void {
    const values = [this.steps, this.phaseIndex, this.stepInPhase, this.cursor, this.c, this.s0, this.s1, this.s2];
    values.forEach((v, i) => view.setFloat64(offset + 8 * i, v, true));
  }

  /** A generator that continues exactly where a saved one stopped. */
  static restore(phases: readonly CompiledPhase[], vcpus: number, vcpu: number, seed: number, view: DataView, offset: number): AccessGenerator {
    const at = (i: number) => view.getFloat64(offset + 8 * i, true);
    const g = new AccessGenerator(phases, vcpus, vcpu, seed, { c: at(4), s0: at(5), s1: at(6), s2: at(7) });
    g.steps = at(0);
    g.phaseIndex = at(1);
    g.stepInPhase = at(2);
    g.phase = phases[g.phaseIndex];
    g.enterPhase();
    g.cursor = at(3);
    if (g.prog !== null) g.seekTrace(g.prog, (g.phase.trace as CompiledTrace).copies, g.stepInPhase);
    return g;
  }

  /** A phase (re)starts: sequential vCPUs begin at their own share of the region; a trace at its first access. */
  private enterPhase(): void {
    const ph = this.phase;
    this.cursor = ph.start + Math.floor((this.vcpu * ph.len) / this.vcpus);
    const t = ph.trace;
    if (t === null) {
      this.prog = null;
      this.phaseSteps = ph.steps;
      this.nextNs = ph.computeNs;
      return;
    }
    this.prog = t.programs[this.vcpu % t.programs.length];
    this.phaseSteps = t.copies * this.prog.accesses;
    this.seekTrace(this.prog, t.copies, 0);
  }

  private seekTrace(prog: ReplayProgram, copies: number, step: number): void {
    const at = positionOf(prog, copies, step);
    this.tw = at.window;
    this.tc = at.copy;
    this.ta = at.index;
    this.nextNs = prog.windowNs[this.tw] / (prog.start[this.tw + 1] - prog.start[this.tw]);
  }
}
