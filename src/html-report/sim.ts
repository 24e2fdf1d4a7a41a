/** A simulation run to its end while its snapshots are sampled for an HTML report. */
import type { Simulation } from "../sim/simulation.js";
import type { Report } from "../engine/report.js";
import { SampleLog, type RunRecording } from "./recording.js";

/**
 * Samples come every 2 % of the time elapsed so far (at least 1 ms): a few
 * hundred snapshots for a run of any length (each one sorts the fault latencies).
 */
const MIN_STEP_MS = 1;
const STEP_SHARE = 0.02;

export function recordSimulation(sim: Simulation, label: string): RunRecording {
  const log = new SampleLog();
  log.add(sim.snapshot());
  while (!sim.done) {
    const now = Math.max(0, sim.nowMs);
    sim.advanceTo(now + Math.max(MIN_STEP_MS, now * STEP_SHARE));
    log.add(sim.snapshot());
  }
  const report = sim.report() as Report;
  return log.recording(label, report, sim.progressTrace());
}
