import type { Snapshot } from "../src/engine/report.js";

/** What the runners drive: the simulator or the real back end, behind one face. */
export interface ViewSource {
  snapshot(): Snapshot;
  done(): boolean;
  /** simulator only: advance virtual time by this many ms (Infinity = as fast as possible, a bounded chunk of work per frame) */
  advance?(virtualMs: number): void;
  /** q: returns null if the migration was cancelled, else the reason it was refused (past switchover: the view says so and keeps serving) */
  cancel(): string | null;
}
