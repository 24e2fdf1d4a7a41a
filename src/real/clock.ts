import { monoUs } from "./fault-trace-clock.js";

/**
 * The driver clock of the real back end, in µs. timeOrigin + now() is wall
 * time with a monotonic tail, so two agents on one host share one clock (the
 * destination's resumedAt and the source's pausedAt compare directly); across
 * hosts it is as good as their NTP sync.
 */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
}

let monoOffsetUs: number | null = null;

/**
 * What a CLOCK_MONOTONIC stamp in µs (process.hrtime's, a native thread's,
 * a guest's) adds to be on nowUs's clock. performance.now() runs on the same
 * monotonic clock, so this is one number per process, measured once: as the
 * closest of a few readings of nowUs's clock bracketed by two monotonic
 * ones. A difference of two calls in a row is off by whatever ran between
 * them: a preemption there put a destination guest's stamp 5 µs before the
 * switchover frame that caused it (test/real-migrate's causal order).
 */
export function monoToNowUs(): number {
  if (monoOffsetUs !== null) return monoOffsetUs;
  let gap = Infinity;
  let offset = 0;
  for (let i = 0; i < 16; i++) {
    const a = monoUs();
    const now = (performance.timeOrigin + performance.now()) * 1000;
    const b = monoUs();
    if (b - a < gap) {
      gap = b - a;
      offset = now - (a + b) / 2;
    }
  }
  monoOffsetUs = offset;
  return offset;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * An engine's one deadline on the wall clock: `set(at)` replaces it (null
 * clears it); when it is reached, `fire(now)` runs.
 */
export class DeadlineTimer {
  private timer: NodeJS.Timeout | undefined;
  private at: number | null = null;

  constructor(private readonly fire: (now: number) => void) {}

  set(at: number | null): void {
    if (at === this.at) return;
    clearTimeout(this.timer);
    this.at = at;
    if (at === null) return;
    this.timer = setTimeout(() => {
      this.at = null;
      this.fire(nowUs());
    }, Math.max(0, (at - nowUs()) / 1000));
  }

  clear(): void {
    this.set(null);
  }
}
