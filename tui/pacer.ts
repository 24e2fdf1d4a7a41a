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

export class Pacer {
  paused = false;
  chunkMs = 1;
  private readonly now: () => number;

  constructor(
    private readonly source: ViewSource,
    private readonly opts: PacerOptions,
  ) {
    this.now = opts.now ?? (() => performance.now());
  }

  get canPause(): boolean {
    return this.source.advance !== undefined;
  }

  /** Whether the runner should start the next frame at once (running flat out). */
  get flatOut(): boolean {
    return this.canPause && !this.paused && this.opts.speed === undefined;
  }

  togglePause(): void {
    if (this.canPause) this.paused = !this.paused;
  }

  /** Advance the simulated clock by one frame's worth (nothing for the real back end, or paused). */
  step(): void {
    const { source, opts } = this;
    if (!source.advance || this.paused || source.done()) return;
    if (opts.speed !== undefined) {
      source.advance(opts.speed * opts.frameMs);
      return;
    }
    const t0 = this.now();
    source.advance(this.chunkMs);
    this.chunkMs = nextChunk(this.chunkMs, this.now() - t0, opts.frameMs);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
export const tick = () => new Promise<void>((r) => setImmediate(r));
