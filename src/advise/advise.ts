/**
 * The advisor: simulate every candidate for one workload and link, keep
 * those whose report meets every objective, and choose the cheapest. When
 * none meets them all, the closest one (smallest worst relative miss) and
 * the objective it misses are the answer instead.
 */
import type { Report } from "../engine/report.js";
import type { LinkSpec } from "../sim/link.js";
import { DEFAULT_MAX_VIRTUAL_MS, type SimConfig } from "../sim/simulation.js";
import { runAll } from "../sweep/pool.js";
import { describePolicy, policyArgs, policyOptions } from "../sweep/policy.js";
import type { Workload } from "../workload/types.js";
import { candidates, type Candidate } from "./candidates.js";
import { FIGURES, formatValue, meets, miss, type FigureValue, type Objective } from "./slo.js";

/** What "least cost" means; the first is the default. */
export const COSTS = {
  bytes: { what: "bytes on the wire", of: (a: Assessed) => a.report.bytes_sent },
  total: { what: "total migration time", of: (a: Assessed) => a.report.total_ms },
  lost_work: { what: "guest work lost (vCPU-seconds)", of: (a: Assessed) => a.figures.get("lost_work")!.value },
  link_share: { what: "share of the link's bandwidth taken (the bandwidth cap)", of: (a: Assessed) => a.linkShare },
} as const;

export type CostKey = keyof typeof COSTS;

export interface AdviseInput {
  /** The workload file as the user named it (for the command to run it for real). */
  trace: string;
  workload: Workload;
  /** --memory as given, or null. */
  memory: string | null;
  link: LinkSpec;
  objectives: Objective[];
  cost: CostKey;
  seed: number;
  workers: number;
  maxVirtualMs?: number;
}

export interface Assessed {
  candidate: Candidate;
  report: Report;
  /** Every figure of FIGURES, by key. */
  figures: Map<string, FigureValue>;
  linkShare: number;
  /** One entry per objective it misses. */
  misses: { objective: Objective; value: number; by: number }[];
  ok: boolean;
}

export interface Advice {
  /** The cheapest candidate that meets every objective, or null. */
  chosen: Assessed | null;
  /** When none meets every objective: the one that misses least. */
  closest: Assessed | null;
  /** Every candidate: those that meet the objectives by cost, then the rest by closeness. */
  table: Assessed[];
  /** Figures the objectives use that the report lacks, and what stood in for each. */
  standIns: { key: string; standIn: string }[];
  input: AdviseInput;
}

function assess(input: AdviseInput, candidate: Candidate, report: Report): Assessed {
  const figures = new Map(FIGURES.map((f) => [f.key, f.of(report, input.workload.vcpus)]));
  const cap = policyOptions(candidate.policy).bandwidthCap ?? 0;
  const linkShare = cap > 0 ? Math.min(1, cap / input.link.bandwidthBytesPerSec) : 1;
  const misses = input.objectives.flatMap((objective) => {
    const value = figures.get(objective.figure.key)!.value;
    return meets(objective, value) ? [] : [{ objective, value, by: miss(objective, value) }];
  });
  const completed = report.outcome === "completed" && report.verified !== false;
  return { candidate, report, figures, linkShare, misses, ok: completed && misses.length === 0 };
}

const worst = (a: Assessed) => (a.report.outcome !== "completed" ? Infinity : Math.max(0, ...a.misses.map((m) => m.by)));
const sum = (a: Assessed) => a.misses.reduce((s, m) => s + m.by, 0);

/**
 * A candidate still running at twice the total-time objective misses it by
 * 100 % or more, whatever it does next: it is given up there (outcome
 * "failed"), which keeps one hopeless pre-copy from costing minutes.
 */
export function giveUpMs(input: Pick<AdviseInput, "objectives" | "maxVirtualMs">): number {
  const bounds = input.objectives.filter((o) => o.figure.key === "total" && o.op[0] === "<").map((o) => 2 * o.limit);
  return Math.min(input.maxVirtualMs ?? DEFAULT_MAX_VIRTUAL_MS, ...bounds);
}

export async function advise(input: AdviseInput): Promise<Advice> {
  const list = candidates(input.link, input.objectives);
  const maxVirtualMs = giveUpMs(input);
  const configs: SimConfig[] = list.map((c) => ({
    workload: input.workload,
    options: { ...policyOptions(c.policy), mode: c.mode, ...(input.link.sharedChannel ? { urgentChannel: false } : {}) },
    link: { ...input.link },
    seed: input.seed,
    maxVirtualMs,
    trackContent: false, // the advice reads timings and counts, never the memory: the same runs without page contents (docs/sim-scaling.md)
  }));
  const reports: Report[] = [];
  await runAll(configs, { workers: input.workers, onReport: (i, r) => (reports[i] = r) });
  const all = list.map((c, i) => assess(input, c, reports[i]));
  const cost = COSTS[input.cost].of;
  // Costs equal to 3 significant digits tie; a tie goes to the guest (less lost work), then fewer bytes, a shorter run, the engine's defaults.
  const q = (x: number) => Number(x.toPrecision(3));
  const lost = (a: Assessed) => a.figures.get("lost_work")!.value;
  const byCost = (a: Assessed, b: Assessed) =>
    q(cost(a)) - q(cost(b)) || q(lost(a)) - q(lost(b)) || a.report.bytes_sent - b.report.bytes_sent || a.report.total_ms - b.report.total_ms;
  const good = all.filter((a) => a.ok).sort(byCost);
  const rest = all.filter((a) => !a.ok).sort((a, b) => worst(a) - worst(b) || sum(a) - sum(b) || byCost(a, b));
  const standIns = input.objectives.flatMap((o) => {
    const s = all[0]?.figures.get(o.figure.key)?.standIn;
    return s ? [{ key: o.figure.key, standIn: s }] : [];
  });
  return { chosen: good[0] ?? null, closest: good.length ? null : (rest[0] ?? null), table: [...good, ...rest], standIns, input };
}

/** The two commands that run the chosen candidate for real. */
export function realCommands(advice: Advice, a: Assessed): string[] {
  const { input } = advice;
  const source = ["ppsim", "real", "--peer", "DEST_HOST:7070", "--trace", input.trace, "--mode", a.candidate.mode, ...policyArgs(a.candidate.policy)];
  if (input.memory !== null) source.push("--memory", input.memory);
  if (input.seed !== 1) source.push("--seed", String(input.seed));
  return ["ppsim real --listen :7070          # on the destination host", `${source.map(shellWord).join(" ")}   # on the source host`];
}

function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The decision table in markdown: every candidate, the objectives' figures (✗ where missed), cost and bytes. */
export function adviceTable(advice: Advice): string {
  const { objectives } = advice.input;
  const keys = [...new Set([...objectives.map((o) => o.figure.key), "downtime", "total", "bytes", "lost_work"])];
  const star = new Set(advice.standIns.map((s) => s.key));
  const head = ["#", "mode", "policy", ...keys.map((k) => (star.has(k) ? `${k}*` : k)), "meets"];
  const lines = [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`];
  advice.table.forEach((a, i) => {
    const cells = keys.map((k) => {
      // A run that did not complete has no downtime, stalls or lost work to speak of yet.
      if (a.report.outcome !== "completed" && k !== "total" && k !== "bytes") return "–";
      const f = FIGURES.find((x) => x.key === k)!;
      const text = formatValue(f.kind, a.figures.get(k)!.value);
      return a.misses.some((m) => m.objective.figure.key === k) ? `${text} ✗` : text;
    });
    const verdict = a.ok
      ? "yes"
      : a.report.outcome === "failed"
        ? `given up at ${formatValue("duration", giveUpMs(advice.input))}`
        : a.report.outcome !== "completed"
          ? a.report.outcome
          : a.report.verified === false
            ? "NOT verified"
            : "no";
    lines.push(`| ${i + 1} | ${a.candidate.mode} | ${describePolicy(a.candidate.policy)} | ${cells.join(" | ")} | ${verdict} |`);
  });
  return lines.join("\n");
}

/** The advisor's answer for people: the choice (or the closest miss), why, the table, the command. */
export function adviceText(advice: Advice, linkText: string): string {
  const { input } = advice;
  const out: string[] = [];
  const what = (a: Assessed) => `${a.candidate.mode}${describePolicy(a.candidate.policy) === "defaults" ? "" : ` (${describePolicy(a.candidate.policy)})`}`;
  const n = advice.table.length;
  const good = advice.table.filter((a) => a.ok).length;
  out.push(`${input.workload.name} over ${linkText}, objectives ${input.objectives.map((o) => o.text).join(", ")}; cost: ${COSTS[input.cost].what}`);
  if (advice.chosen) {
    out.push(`advice: ${what(advice.chosen)} — the least ${COSTS[input.cost].what} of the ${good} of ${n} candidates that meet every objective`);
  } else if (advice.closest) {
    const c = advice.closest;
    const missed = c.misses
      .map((m) => `${m.objective.figure.key} by ${(m.by * 100).toFixed(0)} % (${formatValue(m.objective.figure.kind, m.value)}, objective ${m.objective.text})`)
      .join(", ");
    out.push(`advice: none of the ${n} candidates meets every objective. Closest: ${what(c)}, which misses ${missed || `nothing but ends ${c.report.outcome}`}`);
  }
  out.push("", adviceTable(advice));
  for (const s of advice.standIns) out.push(`* ${s.key}: the report has no such figure yet; ${s.standIn} stood in for it.`);
  const pick = advice.chosen ?? advice.closest;
  if (pick) out.push("", "run it for real:", ...realCommands(advice, pick).map((l) => `  ${l}`));
  return out.join("\n");
}
