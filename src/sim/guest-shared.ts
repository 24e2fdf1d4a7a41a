/**
 * What both simulated guests share (they never run at once): the write
 * versions, the useful work and accesses done, the recorders of what the
 * guest felt, and whether page contents are tracked at all.
 */
import type { CompiledPhase } from "../workload/generator.js";
import type { Workload } from "../workload/types.js";
import { FaultLog } from "../disruption/faults.js";
import { ProgressRecorder } from "../disruption/recorder.js";

/** What one memory access costs on top of a step's compute time (µs). */
export const ACCESS_US = 0.05;

export class GuestShared {
  lastVersion: number;
  /** Unthrottled step time completed by all vCPUs of either guest, µs: the guest's useful work. */
  workUs = 0;
  /** Accesses performed by either guest. */
  accesses = 0;
  /** Each vCPU's work on a fine clock (recording while the migration runs): what the guest felt. */
  readonly progress: ProgressRecorder;
  /** Every wait of a vCPU on a missing page. */
  readonly faults: FaultLog;

  /**
   * `content` false (SimConfig.trackContent): the guests keep no page
   * versions, only which source pages are zero — all the engines can see of a
   * page (a zero page travels without its bytes) — so nothing simulated
   * changes; only the end-of-run check of the destination's memory is gone.
   */
  constructor(
    readonly workload: Workload,
    readonly phases: readonly CompiledPhase[],
    readonly seed: number,
    readonly content = true,
  ) {
    this.lastVersion = workload.pageCount;
    this.progress = new ProgressRecorder(workload.vcpus);
    this.faults = new FaultLog(workload.vcpus);
  }
}

export interface StallHandler {
  (vcpu: number, page: number, at: number): void;
}
