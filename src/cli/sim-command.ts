/** `ppsim --trace workload.json`: simulate one migration, shown live (TTY) or as lines, or as one JSON object. */
import { readFileSync } from "node:fs";
import { runPlain, runTui, type ViewSource } from "../../tui/index.js";
import { watchableSpeed } from "../../tui/pacer.js";
import { reportLines } from "../../tui/plain.js";
import type { Report } from "../engine/report.js";
import { recordSimulation, SampleLog, writeHtmlReport } from "../html-report/index.js";
import { Simulation, type SimConfig } from "../sim/simulation.js";
import { loadWorkload } from "../workload/parse.js";
import { withMemory, type Workload } from "../workload/types.js";
import { UsageError } from "./errors.js";
import { runShowingProgress, stderrProgress } from "./progress.js";
import { parseSimFlags, type SimChoices, type SimFlags } from "./sim-args.js";

export interface SimCommandFlags extends SimFlags {
  speed?: string;
  plain?: boolean;
}

/** The workload file's JSON as it was read, for the report (so that `ppsim rerun` needs nothing else). */
export function workloadSpec(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, "utf8")) as unknown;
  } catch {
    return null; // loadWorkload has read it already, and says what is wrong if anything is
  }
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
    host: choices.host ?? null,
    ...(choices.destPopulated === true ? { destPopulated: true } : {}),
    ...(choices.standby === undefined ? {} : { standby: choices.standby }),
    ...(choices.sourceDiesAtMs === undefined ? {} : { sourceDiesAtMs: choices.sourceDiesAtMs }),
  };
}

/**
 * The simulation behind the view's face. Quitting a simulation always works:
 * before switchover it is the engine's cancel; past it (a real source must
 * refuse there) the simulation stops where it stands and says so.
 */
export function viewOf(sim: Simulation): ViewSource {
  return {
    snapshot: () => sim.snapshot(),
    done: () => sim.done,
    advance: (ms) => sim.advanceTo(sim.nowMs + ms),
    cancel: () => {
      const refused = sim.cancel("operator quit");
      if (refused === null || sim.done) return refused;
      sim.stop(`operator quit past switchover (a real migration would refuse: ${refused}); the simulation stopped there`);
      return null;
    },
  };
}

/** --speed: virtual ms per wall ms, or "max" (as fast as possible); "auto" when not given. */
export function parseSpeed(text: string | undefined): number | "max" | "auto" {
  if (text === undefined || text === "auto") return "auto";
  if (text === "max") return "max";
  const n = Number(text);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`--speed must be a positive number (virtual ms per wall ms), max or auto, got "${text}"`);
  return n;
}

/** The virtual time one full pass over memory takes on the link: what a run lasts, give or take its rounds. */
export function predictedMs(workload: Workload, link: SimChoices["link"]): number {
  return (workload.pageCount * workload.pageSize * 1000) / link.bandwidthBytesPerSec;
}

/** Runs the simulation; returns the process exit code. */
export async function runSimCommand(flags: SimCommandFlags, out: (line: string) => void): Promise<number> {
  const choices = parseSimFlags(flags);
  const speedFlag = parseSpeed(flags.speed);
  const workload = workloadFor(choices);
  const sim = new Simulation(simConfig(choices, workload));
  const title = `ppsim: ${workload.name}, ${choices.mode}`;
  let report: Report;
  // The live view's snapshots are the HTML report's samples (with --json, recordSimulation samples them).
  const samples = flags.report !== undefined && !flags.json ? new SampleLog() : null;
  const sampled = (v: ViewSource): ViewSource => (samples === null ? v : { ...v, snapshot: () => { const s = v.snapshot(); samples.add(s); return s; } });
  if (flags.json) {
    if (flags.report !== undefined) {
      const rec = recordSimulation(sim, choices.mode);
      report = { ...rec.report, workload_spec: workloadSpec(choices.trace) };
      writeHtmlReport(flags.report, title, [{ ...rec, report }]);
    } else {
      const progress = stderrProgress();
      report = { ...runShowingProgress(sim, progress, `${title}:`), workload_spec: workloadSpec(choices.trace) };
      progress.end();
    }
    out(JSON.stringify(report, null, 2));
  } else if (process.stdout.isTTY && !flags.plain) {
    const speed = speedFlag === "max" ? undefined : speedFlag === "auto" ? watchableSpeed(predictedMs(workload, choices.link)) : speedFlag;
    const final = await runTui(sampled(viewOf(sim)), { speed });
    report = final.report ?? sim.runToEnd();
  } else {
    const view = sampled(viewOf(sim));
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
  if (samples !== null && flags.report !== undefined) {
    writeHtmlReport(flags.report, title, [samples.recording(choices.mode, report, sim.progressTrace())]);
    out(`HTML report: ${flags.report}`);
  }
  return report.outcome === "completed" && report.verified !== false ? 0 : 1;
}

export { reportLines };
