/**
 * The driver clock of the real back end, in µs. timeOrigin + now() is wall
 * time with a monotonic tail, so two agents on one host share one clock (the
 * destination's resumedAt and the source's pausedAt compare directly); across
 * hosts it is as good as their NTP sync.
 */
export function nowUs(): number {
  return Math.round((performance.timeOrigin + performance.now()) * 1000);
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
