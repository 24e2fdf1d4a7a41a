/** The check every optional cost key of a host profile shares (host-lane.ts, host-runs.ts, host-switchover.ts, host-populated.ts). */

/** The first of `keys` present in `o` that is not a number in [0, max]: its sentence, or null. */
export function optionalCostError(o: Record<string, unknown>, keys: readonly string[], max: number): string | null {
  for (const k of keys) {
    const x = o[k];
    if (x !== undefined && (typeof x !== "number" || !Number.isFinite(x) || x < 0 || x > max)) return `"${k}" must be a number in [0, ${max}], got ${JSON.stringify(x)}`;
  }
  return null;
}
