/**
 * `ppsim advise --trace w.json --link 10Gbit,0.2ms --slo "max_stall<=50ms, total<=30s, downtime<=300ms"`
 * (docs/advise.md): which mode and policy meets the objectives at the least cost.
 */
import { parseArgs } from "node:util";
import { advise, adviceText, COSTS, realCommands, type CostKey } from "../advise/advise.js";
import { FIGURES, parseSlo } from "../advise/slo.js";
import { parseLink } from "../sim/link.js";
import { DEFAULT_WORKERS } from "../sweep/pool.js";
import { describePolicy } from "../sweep/policy.js";
import { UsageError } from "./errors.js";
import { DEFAULT_LINK, parseDurationMs } from "./sim-args.js";
import { loadWorkload } from "../workload/parse.js";
import { parseByteSize } from "../workload/size.js";
import { withMemory } from "../workload/types.js";

export const ADVISE_USAGE = `ppsim advise --trace FILE --slo OBJECTIVES [--link BANDWIDTH,LATENCY] [flags]
  --trace FILE      workload (or trace) file
  --slo TEXT        objectives, comma-separated FIGURE<=VALUE or FIGURE>=VALUE, e.g.
                    "max_stall<=50ms, total<=30s, downtime<=300ms"; figures:
${FIGURES.map((f) => `                      ${f.key.padEnd(15)}${f.what}`).join("\n")}
  --link SPEC       default ${DEFAULT_LINK}
  --cost KEY        what "least cost" means: ${Object.keys(COSTS).join(", ")} (default bytes)
  --memory SIZE     override the workload's memory size
  --seed N          workload seed (default 1)
  --workers N       simulations in parallel (default one per core, here ${DEFAULT_WORKERS})
  --max-time D      give a candidate up after this much virtual time (default 10 min)
  --json            the decision as one JSON object
Exit status 0 when a candidate meets every objective, 1 when none does.`;

const FLAGS = {
  trace: { type: "string" },
  slo: { type: "string" },
  link: { type: "string" },
  cost: { type: "string" },
  memory: { type: "string" },
  seed: { type: "string" },
  workers: { type: "string" },
  "max-time": { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

function intFlag(flag: string, text: string | undefined, dflt: number, max: number): number {
  if (text === undefined) return dflt;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || n > max) throw new UsageError(`--${flag} must be an integer in [0, ${max}], got "${text}"`);
  return n;
}

export async function runAdviseCommand(argv: string[], out: (line: string) => void): Promise<number> {
  const { values: f } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false });
  if (f.help) {
    out(ADVISE_USAGE);
    return 0;
  }
  if (f.trace === undefined) throw new UsageError("advise needs --trace FILE: the workload to migrate");
  if (f.slo === undefined) throw new UsageError(`advise needs --slo, e.g. --slo "max_stall<=50ms, total<=30s, downtime<=300ms"`);
  const objectives = parseSlo(f.slo);
  const linkText = f.link ?? DEFAULT_LINK;
  let link;
  try {
    link = parseLink(linkText);
  } catch (e) {
    throw new UsageError(`--link: ${(e as Error).message}`);
  }
  const cost = (f.cost ?? "bytes") as CostKey;
  if (!(cost in COSTS)) throw new UsageError(`--cost must be one of ${Object.keys(COSTS).join(", ")}, got "${f.cost}"`);
  const seed = intFlag("seed", f.seed, 1, Number.MAX_SAFE_INTEGER);
  const workers = intFlag("workers", f.workers, DEFAULT_WORKERS, 256);
  const maxVirtualMs = f["max-time"] === undefined ? undefined : parseDurationMs("max-time", f["max-time"]);
  let workload = loadWorkload(f.trace);
  if (f.memory !== undefined) {
    const b = parseByteSize(f.memory);
    if (typeof b === "string") throw new UsageError(`--memory ${b}`);
    try {
      workload = withMemory(workload, b);
    } catch (e) {
      throw new UsageError(`--memory: ${(e as Error).message}`);
    }
  }
  const advice = await advise({ trace: f.trace, workload, memory: f.memory ?? null, link, objectives, cost, seed, workers, maxVirtualMs });
  if (f.json) {
    const pick = advice.chosen ?? advice.closest;
    out(JSON.stringify({
      workload: workload.name,
      link: linkText,
      objectives: objectives.map((o) => o.text),
      cost,
      met: advice.chosen !== null,
      choice: pick ? { mode: pick.candidate.mode, policy: pick.candidate.policy, misses: pick.misses.map((m) => m.objective.text) } : null,
      stand_ins: advice.standIns,
      real: pick ? realCommands(advice, pick) : [],
      table: advice.table.map((a) => ({
        mode: a.candidate.mode,
        policy: describePolicy(a.candidate.policy),
        ok: a.ok,
        figures: Object.fromEntries([...a.figures].map(([k, v]) => [k, v.value])),
        misses: a.misses.map((m) => m.objective.text),
      })),
    }, null, 2));
  } else {
    out(adviceText(advice, linkText));
  }
  return advice.chosen ? 0 : 1;
}
