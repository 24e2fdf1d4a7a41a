/**
 * The policy parameters a sweep or the advisor varies, named as the command
 * line names them (`--hybrid-rounds 2` is `"hybrid-rounds": "2"`), so a row
 * turns back into the flags of `ppsim` or `ppsim real` without translation.
 */
import type { Mode } from "../engine/messages.js";
import type { MigrationOptions } from "../engine/options.js";
import { parsePolicyFlags, type PolicyFlags } from "../cli/sim-args.js";

export type PolicyKey = "downtime-limit" | "max-rounds" | "auto-converge" | "hybrid-rounds" | "prefetch-pages" | "background-order" | "bandwidth-cap" | "downtime-margin";

/**
 * Which modes each parameter changes anything in (read off src/engine/switchover.ts:
 * hybrid checks the downtime limit but neither the round cap nor auto-converge;
 * prefetch and the background order only exist after switchover). A sweep
 * runs a mode once per value of the parameters it uses, not of every one.
 */
export const POLICY_MODES: Record<PolicyKey, readonly Mode[]> = {
  "downtime-limit": ["precopy", "hybrid"],
  "max-rounds": ["precopy"],
  "auto-converge": ["precopy"],
  "hybrid-rounds": ["hybrid"],
  "prefetch-pages": ["postcopy", "hybrid"],
  "background-order": ["postcopy", "hybrid"],
  "bandwidth-cap": ["precopy", "postcopy", "hybrid"],
  // Last: the columns of grids made before it keep their order.
  "downtime-margin": ["precopy", "hybrid"],
};

export const POLICY_KEYS = Object.keys(POLICY_MODES) as PolicyKey[];

/** Parameter → value as its flag takes it; "auto-converge" is "on"/"off", "bandwidth-cap" may be "none". */
export type Policy = Partial<Record<PolicyKey, string>>;

function asFlags(policy: Policy): PolicyFlags {
  const f: PolicyFlags = {};
  for (const key of POLICY_KEYS) {
    const v = policy[key];
    if (v === undefined) continue;
    if (key === "auto-converge") {
      if (v !== "on" && v !== "off") throw new Error(`auto-converge must be on or off (true or false), got "${v}"`);
      if (v === "off") f["no-auto-converge"] = true;
    } else if (key === "bandwidth-cap") {
      if (v !== "none") f["bandwidth-cap"] = v;
    } else {
      f[key] = v;
    }
  }
  return f;
}

/** The engine options a policy stands for; throws (a UsageError naming the flag) on a bad value. */
export function policyOptions(policy: Policy): Partial<MigrationOptions> {
  return parsePolicyFlags(asFlags(policy));
}

/** The command-line flags that set this policy, e.g. ["--hybrid-rounds", "2", "--no-auto-converge"]. */
export function policyArgs(policy: Policy): string[] {
  const args: string[] = [];
  for (const key of POLICY_KEYS) {
    const v = policy[key];
    if (v === undefined || (key === "bandwidth-cap" && v === "none") || (key === "auto-converge" && v === "on")) continue;
    if (key === "auto-converge") args.push("--no-auto-converge");
    else args.push(`--${key}`, v);
  }
  return args;
}

/** The policy with only the parameters that change anything in this mode. */
export function policyForMode(policy: Policy, mode: Mode): Policy {
  const out: Policy = {};
  for (const key of POLICY_KEYS) if (policy[key] !== undefined && POLICY_MODES[key].includes(mode)) out[key] = policy[key];
  return out;
}

/** "hybrid-rounds=2 prefetch=32", or "defaults". */
export function describePolicy(policy: Policy): string {
  const parts = POLICY_KEYS.filter((k) => policy[k] !== undefined).map((k) => `${k}=${policy[k]}`);
  return parts.length ? parts.join(" ") : "defaults";
}
