/**
 * What a real run is made of, decided before the guest starts: the workload
 * at the chosen memory size, and how many steps each vCPU runs.
 *
 * Steps: the run must be finite (so that an unmigrated run to the same steps
 * gives the hash the destination must end with) and must outlast the
 * migration (else the guest stops touching memory and post-copy is not
 * exercised). The guest runs warmup_ms before the migration starts; after
 * that it should run for about twice the migration's expected length, and at
 * least 2 s: the expected length assumes 400 MiB/s of page traffic, a
 * conservative figure for loopback (docs/real.md). A step costs its
 * compute_ns (the guest calibrates its busy loop to real time) plus an
 * allowance for the memory access, and vCPUs beyond the host's cores share
 * them. `--steps` overrides the choice.
 */
import { availableParallelism } from "node:os";
import type { Mode } from "../engine/messages.js";
import { withMemory, type Workload } from "../workload/types.js";
import { RealError } from "./errors.js";

/** Allowance per step for the access itself (a cache miss, the RNG), ns. */
const ACCESS_NS = 150;
const ASSUMED_BYTES_PER_S = 400 * 1024 * 1024;
const MIN_RUN_AFTER_WARMUP_MS = 2000;

export interface SessionInfo {
  /** Workload name, for reports. */
  workload: string;
  /** The guest config text (toGuestConfig). */
  config: string;
  seed: number;
  /** Steps per vCPU; the destination guest stops at the same count. */
  steps: number;
  mode: Mode;
}

/** The workload at another memory size (`--memory`), or as it is. */
export function scaleWorkload(w: Workload, memBytes: number | null): Workload {
  if (memBytes === null) return w;
  try {
    return withMemory(w, memBytes);
  } catch (e) {
    throw new RealError(`--memory: ${(e as Error).message}`);
  }
}

/** Expected steps per second of one vCPU when all vCPUs run. */
export function estimatedStepRate(w: Workload, cores = availableParallelism()): number {
  let steps = 0;
  let ns = 0;
  for (const ph of w.phases) {
    steps += ph.steps;
    ns += ph.steps * (ph.computeNs + ACCESS_NS);
  }
  const share = Math.min(1, cores / w.vcpus);
  return (steps / ns) * 1e9 * share;
}

/** Steps per vCPU so the guest runs warmup + max(2 s, 2 × expected migration). */
export function chooseSteps(w: Workload, cores = availableParallelism()): number {
  const migrationMs = (w.memBytes / ASSUMED_BYTES_PER_S) * 1000;
  const runMs = w.warmupMs + Math.max(MIN_RUN_AFTER_WARMUP_MS, 2 * migrationMs);
  return Math.max(1, Math.ceil((estimatedStepRate(w, cores) * runMs) / 1000));
}

/** Validates the JSON a source sends in its bulk preamble; throws a sentence on anything off. */
/** A peer decides how long the destination guest runs after completion: bounded (about an hour of the fastest example's steps). */
export const MAX_SESSION_STEPS = 2 ** 31;

export function parseSessionInfo(text: string): SessionInfo {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new RealError("the source's session info is not JSON");
  }
  const o = v as Partial<Record<keyof SessionInfo, unknown>>;
  if (typeof v !== "object" || v === null) throw new RealError("the source's session info is not an object");
  if (typeof o.workload !== "string" || typeof o.config !== "string") throw new RealError("the source's session info lacks workload or config");
  if (typeof o.seed !== "number" || !Number.isSafeInteger(o.seed) || o.seed < 0) throw new RealError("the source's session info has a bad seed");
  if (typeof o.steps !== "number" || !Number.isSafeInteger(o.steps) || o.steps < 1) throw new RealError("the source's session info has a bad steps count");
  if (o.steps > MAX_SESSION_STEPS) throw new RealError(`the source's session info asks for ${o.steps} steps per vCPU; this destination runs at most ${MAX_SESSION_STEPS}`);
  if (o.mode !== "precopy" && o.mode !== "postcopy" && o.mode !== "hybrid") throw new RealError("the source's session info has a bad mode");
  return { workload: o.workload, config: o.config, seed: o.seed, steps: o.steps, mode: o.mode };
}
