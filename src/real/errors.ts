/**
 * Errors of the real back end that a user or operator can act on: a peer
 * that is unreachable or speaks garbage, a guest that cannot start, missing
 * userfaultfd permission. The CLI prints them as one line, without a stack
 * (see describeFailure in src/cli/main.ts: it honours `userFacing`).
 */
export class RealError extends Error {
  override name = "RealError";
  readonly userFacing = true;
}

/** The message of anything thrown, for one-line reports. */
export function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
