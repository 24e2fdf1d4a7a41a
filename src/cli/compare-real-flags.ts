/** The flags `compare --real` adds to the simulation flags (apart, so plain `compare` loads no real back end). */
import type { SimFlags } from "./sim-args.js";

export const COMPARE_REAL_FLAGS = {
  real: { type: "boolean" },
  peer: { type: "string" },
  demo: { type: "boolean" },
  steps: { type: "string" },
} as const;

export interface CompareRealFlags extends SimFlags {
  real?: boolean;
  peer?: string;
  demo?: boolean;
  steps?: string;
}
