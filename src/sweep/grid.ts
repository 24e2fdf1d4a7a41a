/**
 * A sweep's grid file (docs/sweep.md): the lists whose cross product is run.
 * Expansion order is fixed — workload, memory, link, mode, policy parameters
 * (in POLICY_KEYS order), seed, the last varying fastest — so run i of a grid
 * is the same run however, wherever and in how many pieces the grid is run.
 */
import { createHash } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { MODES, type Mode } from "../engine/messages.js";
import type { SimConfig } from "../sim/simulation.js";
import { parseLink } from "../sim/link.js";
import { parseDurationMs } from "../cli/sim-args.js";
import { loadWorkload } from "../workload/parse.js";
import { parseByteSize } from "../workload/size.js";
import { withMemory, type Workload } from "../workload/types.js";
import { POLICY_KEYS, POLICY_MODES, policyOptions, type Policy, type PolicyKey } from "./policy.js";

export const GRID_SCHEMA_VERSION = 1;
/** A grid that expands to more runs than this is refused: almost surely a typo (a seed count of 1e9). */
export const MAX_RUNS = 1_000_000;
const MAX_GRID_FILE_BYTES = 1 << 20;

/** A bad grid file: printed as one line naming the file and the field. */
export class GridError extends Error {
  override name = "GridError";
  readonly userFacing = true;
}

/** One run of the grid, as the rows name it (the values as the grid file wrote them). */
export interface RunKey {
  index: number;
  /** The workload file as the grid names it. */
  trace: string;
  workload: string;
  /** The memory size as the grid wrote it, or "" for the workload's own. */
  memory: string;
  mem_bytes: number;
  vcpus: number;
  link: string;
  mode: Mode;
  /** Only the parameters the grid varies and this mode uses. */
  policy: Policy;
  seed: number;
}

export interface Run {
  key: RunKey;
  config: SimConfig;
}

export interface Grid {
  name: string;
  /** Hash of the grid file and of every workload file it names: shards of one grid carry the same id. */
  id: string;
  /** The policy parameters the grid names, in POLICY_KEYS order (the rows' policy columns). */
  policyKeys: PolicyKey[];
  runs: Run[];
}

const TOP_KEYS = ["ppsim_sweep", "name", "workloads", "memory", "links", "modes", "policy", "seeds", "max_time", "check_memory"];

type Obj = Record<string, unknown>;

/** Reads, validates and expands a grid file. Workload paths are relative to the grid file. */
export function loadGrid(path: string): Grid {
  let text: string;
  try {
    const size = statSync(path).size;
    if (size > MAX_GRID_FILE_BYTES) throw new Error(`${size} bytes, more than the ${MAX_GRID_FILE_BYTES} a grid may have`);
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new GridError(`${path}: cannot read the grid file: ${(e as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new GridError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return parseGrid(json, path, text);
}

/** `origin` names the file in messages and anchors relative workload paths. */
export function parseGrid(json: unknown, origin: string, text = JSON.stringify(json)): Grid {
  const fail = (field: string, why: string): never => {
    throw new GridError(`${origin}: ${field} ${why}`);
  };
  if (typeof json !== "object" || json === null || Array.isArray(json)) fail("the grid", "must be a JSON object");
  const g = json as Obj;
  for (const k of Object.keys(g)) if (!TOP_KEYS.includes(k)) fail(k, `is not a known field (expected one of: ${TOP_KEYS.join(", ")})`);
  if (g.ppsim_sweep !== GRID_SCHEMA_VERSION) fail("ppsim_sweep", `must be ${GRID_SCHEMA_VERSION} (the grid schema version), got ${JSON.stringify(g.ppsim_sweep)}`);

  const list = (field: string, required: boolean): unknown[] | null => {
    const v = g[field];
    if (v === undefined) return required ? fail(field, "is required: a non-empty list") : null;
    if (!Array.isArray(v) || v.length === 0) fail(field, "must be a non-empty list");
    return v as unknown[];
  };
  const strings = (field: string, v: unknown[]): string[] =>
    v.map((x, i) => (typeof x === "string" && x.trim() !== "" ? x : fail(`${field}[${i}]`, `must be a non-empty string, got ${JSON.stringify(x)}`)));

  const base = dirname(origin);
  const hash = createHash("sha256").update(text);
  const workloads = strings("workloads", list("workloads", true)!).map((file, i) => {
    let w: Workload;
    try {
      w = loadWorkload(resolve(base, file));
      hash.update(readFileSync(resolve(base, file)));
    } catch (e) {
      return fail(`workloads[${i}]`, (e as Error).message);
    }
    return { file, workload: w };
  });

  const memories = (list("memory", false) ?? [""]).map((m, i) => {
    if (m === "") return { text: "", bytes: null };
    const bytes = parseByteSize(m);
    if (typeof bytes === "string") return fail(`memory[${i}]`, bytes);
    return { text: typeof m === "number" ? String(m) : (m as string), bytes };
  });

  const links = strings("links", list("links", true)!).map((text, i) => {
    try {
      return { text, spec: parseLink(text) };
    } catch (e) {
      return fail(`links[${i}]`, (e as Error).message);
    }
  });

  const modes = strings("modes", list("modes", false) ?? ["precopy"]).map((m, i) =>
    (MODES as readonly string[]).includes(m) ? (m as Mode) : fail(`modes[${i}]`, `must be one of ${MODES.join(", ")}, got "${m}"`),
  );

  const { keys: policyKeys, values: policyValues } = parsePolicy(g.policy, fail);
  const seeds = parseSeeds(g.seeds, fail);
  let maxVirtualMs: number | undefined;
  if (g.max_time !== undefined) {
    try {
      maxVirtualMs = parseDurationMs("max_time", String(g.max_time));
    } catch (e) {
      fail("max_time", (e as Error).message.replace(/^--max_time /, ""));
    }
  }

  // false: the runs keep no page contents (SimConfig.trackContent) — the same runs, faster, their memory unchecked (verified null).
  if (g.check_memory !== undefined && typeof g.check_memory !== "boolean") fail("check_memory", `must be true or false, got ${JSON.stringify(g.check_memory)}`);
  const trackContent = g.check_memory !== false;

  const count = workloads.length * memories.length * links.length * seeds.length *
    modes.reduce((n, mode) => n + policyCombinations(policyKeys, policyValues, mode).length, 0);
  if (count > MAX_RUNS) fail("the grid", `expands to ${count} runs, more than the ${MAX_RUNS} a grid may have`);

  const runs: Run[] = [];
  for (const { file, workload } of workloads) {
    for (const [mi, memory] of memories.entries()) {
      let w = workload;
      if (memory.bytes !== null) {
        try {
          w = withMemory(workload, memory.bytes);
        } catch (e) {
          fail(`memory[${mi}]`, `for ${file}: ${(e as Error).message}`);
        }
      }
      for (const link of links) {
        for (const mode of modes) {
          for (const policy of policyCombinations(policyKeys, policyValues, mode)) {
            const options = { ...policyOptions(policy), mode };
            if (link.spec.sharedChannel) options.urgentChannel = false;
            for (const seed of seeds) {
              runs.push({
                key: { index: runs.length, trace: file, workload: w.name, memory: memory.text, mem_bytes: w.memBytes, vcpus: w.vcpus, link: link.text, mode, policy, seed },
                config: { workload: w, options, link: { ...link.spec }, seed, maxVirtualMs, ...(trackContent ? {} : { trackContent }) },
              });
            }
          }
        }
      }
    }
  }
  return { name: typeof g.name === "string" ? g.name : origin, id: hash.digest("hex").slice(0, 16), policyKeys, runs };
}

type Fail = (field: string, why: string) => never;

function parsePolicy(v: unknown, fail: Fail): { keys: PolicyKey[]; values: Map<PolicyKey, string[]> } {
  const values = new Map<PolicyKey, string[]>();
  if (v === undefined) return { keys: [], values };
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail("policy", "must be an object: parameter → list of values");
  for (const [k, list] of Object.entries(v as Obj)) {
    if (!(POLICY_KEYS as string[]).includes(k)) fail(`policy.${k}`, `is not a policy parameter (expected one of: ${POLICY_KEYS.join(", ")})`);
    if (!Array.isArray(list) || list.length === 0) fail(`policy.${k}`, "must be a non-empty list of values");
    const texts = (list as unknown[]).map((x, i) => {
      const text = k === "auto-converge" && typeof x === "boolean" ? (x ? "on" : "off") : typeof x === "number" ? String(x) : x;
      if (typeof text !== "string") return fail(`policy.${k}[${i}]`, `must be a string or number, got ${JSON.stringify(x)}`);
      try {
        policyOptions({ [k]: text });
      } catch (e) {
        fail(`policy.${k}[${i}]`, (e as Error).message);
      }
      return text;
    });
    values.set(k as PolicyKey, texts);
  }
  return { keys: POLICY_KEYS.filter((k) => values.has(k)), values };
}

/** Every combination of the values of the parameters this mode uses, in key order, the last varying fastest. */
function policyCombinations(keys: PolicyKey[], values: Map<PolicyKey, string[]>, mode: Mode): Policy[] {
  let combos: Policy[] = [{}];
  for (const k of keys) {
    if (!POLICY_MODES[k].includes(mode)) continue;
    combos = combos.flatMap((p) => values.get(k)!.map((v) => ({ ...p, [k]: v })));
  }
  return combos;
}

/** [1, 2, 3] or {"from": 1, "count": 10}; default [1]. */
function parseSeeds(v: unknown, fail: Fail): number[] {
  if (v === undefined) return [1];
  const seed = (x: unknown, field: string): number =>
    Number.isSafeInteger(x) && (x as number) >= 0 ? (x as number) : fail(field, `must be an integer ≥ 0, got ${JSON.stringify(x)}`);
  if (Array.isArray(v)) {
    if (v.length === 0) fail("seeds", "must be a non-empty list");
    return v.map((x, i) => seed(x, `seeds[${i}]`));
  }
  if (typeof v === "object" && v !== null) {
    const o = v as Obj;
    for (const k of Object.keys(o)) if (k !== "from" && k !== "count") fail(`seeds.${k}`, "is not a known field (expected from, count)");
    const from = o.from === undefined ? 1 : seed(o.from, "seeds.from");
    const count = seed(o.count, "seeds.count");
    if (count < 1 || count > MAX_RUNS) fail("seeds.count", `must be in [1, ${MAX_RUNS}], got ${count}`);
    return Array.from({ length: count }, (_, i) => from + i);
  }
  return fail("seeds", `must be a list of integers or {"from": N, "count": N}, got ${JSON.stringify(v)}`);
}
