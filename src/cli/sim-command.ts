/** `ppsim --trace workload.json`: simulate one migration, shown live (TTY) or as lines, or as one JSON object. */
import { runPlain, runTui, type ViewSource } from "../../tui/index.js";
import { reportLines } from "../../tui/plain.js";
import type { Report } from "../engine/report.js";
import { Simulation, type SimConfig } from "../sim/simulation.js";
import { loadWorkload } from "../workload/parse.js";
import { withMemory, type Workload } from "../workload/types.js";
import { UsageError } from "./errors.js";
import { parseSimFlags, type SimChoices, type SimFlags } from "./sim-args.js";

export interface SimCommandFlags extends SimFlags {
  speed?: string;
  plain?: boolean;
}

/** The workload of the run, with --memory applied. */
export function workloadFor(choices: SimChoices): Workload {
  const w = loadWorkload(choices.trace);
  if (choices.memoryBytes === null) return w;
  try {
    return withMemory(w, choices.memoryBytes);
  } catch (e) {
    throw new UsageError(`--memory: ${(e as Error).message}`);
  }
}

export function simConfig(choices: SimChoices, workload: Workload, mode = choices.mode): SimConfig {
  return {
    workload,
    options: { ...choices.options, mode },
    link: { ...choices.link },
    seed: choices.seed,
    outages: choices.outages,
    maxVirtualMs: choices.maxVirtualMs,
  };
}

export function viewOf(sim: Simulation): ViewSource {
  return {
    snapshot: () => sim.snapshot(),
    done: () => sim.done,
    advance: (ms) => sim.advanceTo(sim.nowMs + ms),
    cancel: () => sim.cancel("operator quit"),
  };
}

function parseSpeed(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`--speed must be a positive number (virtual ms per wall ms), got "${text}"`);
  return n;
}

/** Runs the simulation; returns the process exit code. */
export async function runSimCommand(flags: SimCommandFlags, out: (line: string) => void): Promise<number> {
  const choices = parseSimFlags(flags);
  const speed = parseSpeed(flags.speed);
  const workload = workloadFor(choices);
  const sim = new Simulation(simConfig(choices, workload));
  let report: Report;
  if (flags.json) {
    report = sim.runToEnd();
    out(JSON.stringify(report, null, 2));
  } else if (process.stdout.isTTY && !flags.plain) {
    const final = await runTui(viewOf(sim), { speed });
    report = final.report ?? sim.runToEnd();
  } else {
    const view = viewOf(sim);
    const onSigint = () => {
      const refused = view.cancel();
      if (refused !== null) out(`! cancel refused: ${refused}`);
    };
    process.on("SIGINT", onSigint);
    try {
      const final = await runPlain(view, { write: out });
      report = final.report ?? sim.runToEnd();
    } finally {
      process.off("SIGINT", onSigint);
    }
  }
  return report.outcome === "completed" && report.verified !== false ? 0 : 1;
}

export { reportLines };
