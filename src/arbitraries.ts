/**
 * fast-check arbitraries for property-based suites built on ppsim
 * (`import { simConfigs } from "ppsim/arbitraries"`; fast-check is a peer
 * dependency). Every value they make is valid input: small workloads that
 * simulate in milliseconds, links, policy options, outage schedules, and
 * whole `simulate()` configurations. Shares are drawn in hundredths (fc.double
 * favours extremes like 1e-300, which mean "never").
 */
import fc from "fast-check";
import { MODES } from "./engine/messages.js";
import type { MigrationOptions } from "./engine/options.js";
import type { LinkSpec } from "./sim/link.js";
import type { Outage, SimConfig } from "./sim/simulation.js";
import { parseWorkload } from "./workload/parse.js";
import type { Workload } from "./workload/types.js";

/** A share in [min, max], in hundredths. */
export const share = (min: number, max: number): fc.Arbitrary<number> =>
  fc.integer({ min: Math.round(min * 100), max: Math.round(max * 100) }).map((x) => x / 100);

/** The pattern of a workload file's phase (JSON form). */
export const patterns = (): fc.Arbitrary<Record<string, unknown>> =>
  fc.oneof(
    fc.record({ kind: fc.constant("sequential"), stride: fc.integer({ min: 1, max: 4 }) }),
    fc.record({ kind: fc.constant("uniform") }),
    fc.record({ kind: fc.constant("hotcold"), hot_share: share(0.01, 0.5), hot_access: share(0.5, 1) }),
    fc.record({ kind: fc.constant("zipf"), exponent: share(0.5, 1.5) }),
  );

export interface WorkloadBounds {
  /** Pages of memory (4 KiB each); default 64..512. */
  minPages?: number;
  maxPages?: number;
  /** Default 1..4. */
  maxVcpus?: number;
  /** Steps per phase, default 50..5000. */
  maxSteps?: number;
}

/** Workload files (the JSON a user writes), valid and small. */
export function workloadFiles(b: WorkloadBounds = {}): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record({
      pages: fc.integer({ min: b.minPages ?? 64, max: b.maxPages ?? 512 }),
      vcpus: fc.integer({ min: 1, max: b.maxVcpus ?? 4 }),
      zero_share: share(0, 0.9),
      warmup_ms: fc.integer({ min: 0, max: 20 }),
      phases: fc.array(
        fc.record({
          steps: fc.integer({ min: 50, max: b.maxSteps ?? 5000 }),
          compute_ns: fc.integer({ min: 1000, max: 50_000 }),
          write_share: share(0, 1),
          pattern: patterns(),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    })
    .map(({ pages, ...rest }) => ({ ppsim_workload: 1, name: "random", memory: pages * 4096, page_size: 4096, ...rest }));
}

/** Validated workloads, as `loadWorkload` returns them. */
export function workloads(b: WorkloadBounds = {}): fc.Arbitrary<Workload> {
  return workloadFiles(b).map((w) => parseWorkload(w));
}

/** Links: 1 MB/s to 1 Gbit/s, 0..2 ms one way, shared channel or not. */
export function links(): fc.Arbitrary<LinkSpec> {
  return fc.record({
    bandwidthBytesPerSec: fc.constantFrom(1e6, 10e6, 125e6),
    latencyUs: fc.integer({ min: 0, max: 2000 }),
    sharedChannel: fc.boolean(),
  });
}

/** Policy options (a partial set, as `simulate()` takes them; the rest keep their defaults). */
export function options(): fc.Arbitrary<Partial<MigrationOptions>> {
  return fc.record(
    {
      mode: fc.constantFrom(...MODES),
      backgroundOrder: fc.constantFrom("linear" as const, "neighbourhood" as const),
      prefetchPages: fc.integer({ min: 0, max: 64 }),
      hybridRounds: fc.integer({ min: 1, max: 3 }),
      maxRounds: fc.integer({ min: 1, max: 6 }),
      downtimeLimitMs: fc.constantFrom(0.001, 0.1, 5, 300),
      downtimeMargin: fc.constantFrom(0, 0.1, 0.5),
      autoConverge: fc.boolean(),
      batchPages: fc.integer({ min: 1, max: 16 }),
    },
    { requiredKeys: ["mode"] },
  );
}

/** Outage schedules: up to `max` outages in the first 200 ms of the migration, 1..100 ms each. */
export function outages(max = 3): fc.Arbitrary<Outage[]> {
  return fc.array(fc.record({ atMs: fc.integer({ min: 0, max: 200 }), durationMs: fc.integer({ min: 1, max: 100 }) }), { maxLength: max });
}

/** Whole configurations for `simulate()` / `new Simulation()`. */
export function simConfigs(b: WorkloadBounds = {}): fc.Arbitrary<SimConfig> {
  return fc.record({ workload: workloads(b), options: options(), link: links(), seed: fc.nat(1000), outages: outages() });
}
