/**
 * What the advisor tries for one workload and link: each mode with the
 * policy values that plausibly matter for it. Kept small on purpose (about
 * twenty simulations), because each is a full migration of the guest.
 */
import type { Mode } from "../engine/messages.js";
import { DEFAULT_OPTIONS } from "../engine/options.js";
import type { LinkSpec } from "../sim/link.js";
import type { Policy } from "../sweep/policy.js";
import type { Objective } from "./slo.js";

export interface Candidate {
  mode: Mode;
  policy: Policy;
}

/** "500Mbit" for a rate in bytes per second, as --bandwidth-cap takes it. */
export function rateText(bytesPerSec: number): string {
  const mbit = (bytesPerSec * 8) / 1e6;
  return mbit >= 1000 && Number.isInteger(mbit / 1000) ? `${mbit / 1000}Gbit` : `${Math.round(mbit)}Mbit`;
}

const ms = (x: number) => `${Number(x.toFixed(3))}ms`;

/**
 * Pre-copy: the engine's downtime limit and the objective's (when there is
 * one), with and without auto-converge. Post-copy: prefetch none, default,
 * wide. Hybrid: 2 (the default), 1 or 4 pre-copy rounds first. Defaults come first, so they win ties. Each of these at full link
 * speed and capped to half of it (what a cap costs in time, it saves other
 * traffic on the link).
 */
export function candidates(link: LinkSpec, objectives: readonly Objective[]): Candidate[] {
  const limits = [DEFAULT_OPTIONS.downtimeLimitMs];
  for (const o of objectives) {
    if (o.figure.key === "downtime" && (o.op === "<=" || o.op === "<") && !limits.includes(o.limit)) limits.push(o.limit);
  }
  const base: Candidate[] = [
    ...limits.flatMap((l) =>
      (["on", "off"] as const).map((ac): Candidate => ({ mode: "precopy", policy: { "downtime-limit": ms(l), "auto-converge": ac } })),
    ),
    ...[DEFAULT_OPTIONS.prefetchPages, 0, 128].map((p): Candidate => ({ mode: "postcopy", policy: { "prefetch-pages": String(p) } })),
    ...[DEFAULT_OPTIONS.hybridRounds, 1, 4].map((n): Candidate => ({ mode: "hybrid", policy: { "hybrid-rounds": String(n) } })),
  ];
  const half = rateText(link.bandwidthBytesPerSec / 2);
  return [...base, ...base.map((c) => ({ mode: c.mode, policy: { ...c.policy, "bandwidth-cap": half } }))];
}
