/**
 * What a simulation is asked to run (SimConfig), and the events its agenda
 * holds (SimEvent): the simulator's inputs, apart from how it runs them.
 */
import type { Message } from "../engine/messages.js";
import type { MigrationOptions } from "../engine/options.js";
import type { Workload } from "../workload/types.js";
import type { HostProfile } from "./host.js";
import type { Direction, LinkEvent, LinkSpec } from "./link.js";
import type { StandbySimSpec } from "./standby.js";

export interface Outage {
  /** Relative to the migration start. */
  atMs: number;
  durationMs: number;
}

export interface SimConfig {
  workload: Workload;
  options?: Partial<MigrationOptions>;
  link: LinkSpec;
  seed?: number;
  outages?: Outage[];
  /** Virtual time after the migration start at which an unfinished run is declared failed. */
  maxVirtualMs?: number;
  /** What the hosts' CPUs cost (src/sim/host.ts); none: free hosts. */
  host?: HostProfile | null;
  /**
   * The destination's memory populated before the migration (`ppsim real --prealloc`): with a host
   * profile, the stream at its populated figures (host-populated.ts); no zero holes. Default false.
   */
  destPopulated?: boolean;
  /** Issue 16: the source keeps a standby copy on storage like this. */
  standby?: StandbySimSpec;
  /** Issue 16: the source host dies this long after the migration start (its link with it, for good). */
  sourceDiesAtMs?: number;
  /**
   * false: the guests keep no page contents, only which pages are zero (all
   * the engines see of a page), so the run is the same but the destination's
   * memory is not checked at the end (the report's `verified` is null). For
   * runs that want only timings and counts (sim-speed, sweeps, the advisor);
   * tests and `ppsim --trace` keep checking. Default true; guests with tasks
   * or huge pages, and a standby copy (which stores contents), always track them.
   */
  trackContent?: boolean;
}

export const DEFAULT_MAX_VIRTUAL_MS = 10 * 60 * 1000;
export type Msg = Message<number>;
export type SimEvent =
  | LinkEvent<Msg>
  | { type: "start" }
  | { type: "deadline" }
  | { type: "timer"; side: Direction; generation: number }
  | { type: "guestPaused"; cpuState: Uint8Array }
  /** The source guest's last vCPU parks, the host's `park_us` after the engine asked (host-switchover.ts). */
  | { type: "sourceParks" }
  /** The destination guest's first vCPU step, the host's `first_step_us` after its engine's RESUME (host-switchover.ts). */
  | { type: "destinationStarts"; cpuState: Uint8Array }
  | { type: "fault"; vcpu: number; page: number; stalledAt: number }
  | { type: "linkDown"; durationUs: number }
  | { type: "linkUp" }
  | { type: "standbyDurable" }
  /** The destination's progress report: the pages it holds (sent after it took the switchover). */
  | { type: "holdsReport" }
  | { type: "holdsArrive"; pages: Uint32Array }
  | { type: "standbyRead"; pages: { page: number; data: number | null }[] }
  | { type: "sourceDies" };
