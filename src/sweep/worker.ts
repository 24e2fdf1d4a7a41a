/** A sweep pool thread: simulates one run per task (the config is a structured clone of the grid's). */
import type { Report } from "../engine/report.js";
import { simulate, type SimConfig } from "../sim/simulation.js";

export default function runTask(config: SimConfig): Report {
  return simulate(config);
}
