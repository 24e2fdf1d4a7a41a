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
