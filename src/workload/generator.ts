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
  /** 1 / hotAccess and 1 / (1 − hotAccess): rescale the decision draw within the side it chose (see `next`). */
  invHot: number;
  invCold: number;
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
      invHot: 1 / ph.pattern.hotAccess,
      invCold: 1 / (1 - ph.pattern.hotAccess),
      zipf: ph.trace === undefined && ph.pattern.kind === "zipf" ? new ZipfSampler(len, ph.pattern.exponent) : null,
      trace: ph.trace === undefined ? null : compileTrace(ph.trace, ph.pattern.region, w.pageCount, w.vcpus, `workload "${w.name}", phases[${i}]`),
    };
  });
}

type XorState = seedrandom.State.Xor128;

/** 2^-32: a 32-bit draw as a fraction in [0, 1). */
const U32 = 2.3283064365386963e-10;

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
   * seedrandom's xor128 state (Marsaglia's xorshift128, seeded by seedrandom
   * itself), stepped here by the same arithmetic as the library's `next`: a
   * method on the generator's own fields is cheaper to call than the
   * library's closure over its object, and an integer step is cheaper than
   * Alea's floating-point one.
   */
  private x = 0;
  private y = 0;
  private z = 0;
  private w = 0;
  private readonly rand = (): number => this.fraction();

  constructor(
    private readonly phases: readonly CompiledPhase[],
    private readonly vcpus: number,
    readonly vcpu: number,
    seed: number,
    state?: XorState,
  ) {
    const s = seedrandom.xor128(`${seed}:${vcpu}`, { state: state ?? true }).state();
    this.x = s.x;
    this.y = s.y;
    this.z = s.z;
    this.w = s.w;
    this.phase = phases[0];
    this.enterPhase();
  }

  /** Compute time before the next access, in ns (unthrottled). */
  get computeNs(): number {
    return this.nextNs;
  }

  /**
   * Draws the next access into `page` / `isWrite` and returns the page.
   *
   * One 32-bit draw makes both decisions of an access: hot or cold (it falls
   * below `hotAccess` or not), then, rescaled to [0, 1) within the side it
   * fell on (uniform again there, and independent of the side), write or
   * read. A second draw picks the page, with the same 32-bit resolution as
   * before. So a hot/cold access with a write decision costs two integer
   * steps (it took three Alea steps), and every share stays what the
   * workload says (docs/sim-scaling.md, "The random stream").
   */
  next(): number {
    const ph = this.phase;
    if (this.prog !== null) return this.nextTraced(ph, this.prog);
    const ws = ph.writeShare;
    const hotcold = ph.kind === HOTCOLD && ph.coldLen !== 0;
    let decide = hotcold || (ws > 0 && ws < 1) ? this.fraction() : 0;
    let hot = true;
    if (hotcold) {
      hot = decide < ph.hotAccess;
      decide = hot ? decide * ph.invHot : (decide - ph.hotAccess) * ph.invCold;
    }
    const wantsWrite = ws >= 1 || (ws > 0 && decide < ws);
    let p: number;
    switch (ph.kind) {
      case SEQUENTIAL:
        p = this.cursor;
        this.cursor += ph.stride;
        if (this.cursor >= ph.end) this.cursor = ph.start + ((this.cursor - ph.start) % ph.len);
        break;
      // `| 0` is Math.floor here (non-negative, below 2^31: compilePhases checks), and keeps p a small integer, so the ownership rule's `%` below is an integer remainder, not a float one.
      case UNIFORM:
        p = ph.start + ((this.fraction() * ph.len) | 0);
        break;
      case HOTCOLD:
        p = hot ? ph.start + ((this.fraction() * ph.hotLen) | 0) : ph.start + ph.hotLen + ((this.fraction() * ph.coldLen) | 0);
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

  /** xor128's step (seedrandom lib/xor128.js), its 32 bits as a fraction in [0, 1). */
  private fraction(): number {
    const x = this.x;
    const t = x ^ (x << 11);
    this.x = this.y;
    this.y = this.z;
    this.z = this.w;
    const w = this.w;
    this.w = w ^ (w >>> 19) ^ t ^ (t >>> 8);
    return (this.w >>> 0) * U32;
  }

  private nextPhase(): void {
    this.stepInPhase = 0;
    this.phaseIndex = this.phaseIndex + 1 === this.phases.length ? 0 : this.phaseIndex + 1;
    this.phase = this.phases[this.phaseIndex];
    this.enterPhase();
  }

  /** Writes the generator's position and random state at `offset`. */
  save(view: DataView, offset: number): void {
    const values = [this.steps, this.phaseIndex, this.stepInPhase, this.cursor, this.x, this.y, this.z, this.w];
    values.forEach((v, i) => view.setFloat64(offset + 8 * i, v, true));
  }

  /** A generator that continues exactly where a saved one stopped. */
  static restore(phases: readonly CompiledPhase[], vcpus: number, vcpu: number, seed: number, view: DataView, offset: number): AccessGenerator {
    const at = (i: number) => view.getFloat64(offset + 8 * i, true);
    const g = new AccessGenerator(phases, vcpus, vcpu, seed, { x: at(4), y: at(5), z: at(6), w: at(7) });
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
