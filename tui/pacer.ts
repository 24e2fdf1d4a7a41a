/**
 * How much simulated time each frame advances. With a speed, a fixed
 * speed × frameMs; without, as fast as possible: one chunk of virtual time
 * per frame, resized after each so that it takes about a frame of wall time.
 */
import type { ViewSource } from "./source.js";

export const MIN_CHUNK_MS = 0.001;
export const MAX_CHUNK_MS = 3_600_000;
/** Share of a frame the chunk may take; the rest is for rendering and input. */
const BUDGET = 0.8;

/** The next chunk size, from the last one and the wall time it took. */
export function nextChunk(chunkMs: number, wallMs: number, frameMs: number): number {
  const ratio = wallMs > 0 ? (frameMs * BUDGET) / wallMs : 4;
  // Grow at most 4× a frame; shrink at once (a chunk that overran stalls the view).
  const k = Math.min(4, Math.max(0.01, ratio));
  return Math.min(MAX_CHUNK_MS, Math.max(MIN_CHUNK_MS, chunkMs * k));
}

export interface PacerOptions {
  speed?: number;
  frameMs: number;
  now?: () => number;
}

/** What `f` multiplies a paced run's speed by. */
export const FASTER = 4;

export class Pacer {
  paused = false;
  chunkMs = 1;
  /** Virtual ms per wall ms; undefined = as fast as possible. */
  speed: number | undefined;
  private readonly now: () => number;

  constructor(
    private readonly source: ViewSource,
    private readonly opts: PacerOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
    this.speed = opts.speed;
  }

  /** A paced simulation can go faster (f) or run to the end flat out (e). */
  get canSpeedUp(): boolean {
    return this.canPause && this.speed !== undefined;
  }

  faster(): void {
    if (this.canSpeedUp) this.speed = (this.speed ?? 1) * FASTER;
  }

  toEnd(): void {
    if (this.canPause) {
      this.speed = undefined;
      this.paused = false;
    }
  }

  /** The pace for the header: "×2.5", "max", or "" for the real back end. */
  get label(): string {
    if (!this.canPause) return "";
    return this.speed === undefined ? "max" : `×${fmtSpeed(this.speed)}`;
  }

  get canPause(): boolean {
    return this.source.advance !== undefined;
  }

  /** Whether the runner should start the next frame at once (running flat out). */
  get flatOut(): boolean {
    return this.canPause && !this.paused && this.speed === undefined;
  }

  togglePause(): void {
    if (this.canPause) this.paused = !this.paused;
  }

  /** Advance the simulated clock by one frame's worth (nothing for the real back end, or paused). */
  step(): void {
    const { source, opts } = this;
    if (!source.advance || this.paused || source.done()) return;
    if (this.speed !== undefined) {
      source.advance(this.speed * opts.frameMs);
      return;
    }
    const t0 = this.now();
    source.advance(this.chunkMs);
    this.chunkMs = nextChunk(this.chunkMs, this.now() - t0, opts.frameMs);
  }
}

function fmtSpeed(x: number): string {
  return x >= 10 ? x.toFixed(0) : x >= 1 ? x.toFixed(1) : x.toPrecision(2);
}

/** Wall seconds a paced run aims to last: long enough to watch, short enough to wait for. */
export const WATCH_SECONDS = 15;

/**
 * A default pace from the run's predicted virtual length: about WATCH_SECONDS
 * of wall time, never slower than real time.
 */
export function watchableSpeed(predictedMs: number): number {
  if (!(predictedMs > 0) || !Number.isFinite(predictedMs)) return 1;
  return Math.max(1, predictedMs / (WATCH_SECONDS * 1000));
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const tick = () => new Promise<void>((r) => setImmediate(r));
