export * from "./types.js";
export { WorkloadError, parseWorkload, loadWorkload } from "./parse.js";
export { parseByteSize, formatBytes } from "./size.js";
export { AccessGenerator, compilePhases, GENERATOR_STATE_BYTES, type CompiledPhase } from "./generator.js";
export { ZipfSampler } from "./zipf.js";
export { toGuestConfig } from "./guest-config.js";
