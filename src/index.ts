/**
 * ppsim as a library: the migration engine, the simulator that drives it, and
 * the workload format. A property-based regression suite can build a workload
 * (or load one), run `simulate()` under any options, link and outages, and
 * check the report and `Simulation.verify()`.
 */
export * from "./engine/index.js";
export { Simulation, simulate, parseLink, formatLink, DEFAULT_MAX_VIRTUAL_MS, type LinkSpec, type Outage, type SimConfig } from "./sim/index.js";
export { loadWorkload, parseWorkload, WorkloadError, parseByteSize, toGuestConfig, type Workload, type WorkloadPhase, type Pattern } from "./workload/index.js";
