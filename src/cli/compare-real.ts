/**
 * `ppsim compare --trace FILE --real [--peer HOST:PORT | --demo]`: the same
 * workload, mode, seed and policy in the simulator and for real, and one
 * table: each figure simulated, real, and the simulator's relative error.
 * The simulator gets the real back end's defaults (REAL_DEFAULTS) too, and
 * the link given by --link (describe the real link there: loopback is far
 * faster than the default 1 Gbit/s).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Report } from "../engine/report.js";
import { recordSimulation, SampleLog, writeHtmlReport, type RunRecording } from "../html-report/index.js";
import { spawnDemoDestination } from "../real/demo.js";
import { calibrate } from "../real/calibrate.js";
import { DestinationAgent } from "../real/dest-agent.js";
import { REAL_DEFAULTS, SourceAgent } from "../real/source-agent.js";
import { DEFAULT_HOST, type HostProfile } from "../sim/host.js";
import { ACCESS_US } from "../sim/guest.js";
import { Simulation } from "../sim/simulation.js";
import type { Workload } from "../workload/types.js";
import { UsageError } from "./errors.js";
import { parseHostPort } from "./real-command.js";
import type { CompareRealFlags } from "./compare-real-flags.js";
import { parseSimFlags, type SimChoices } from "./sim-args.js";
import { simConfig, workloadFor } from "./sim-command.js";


/** How often the real source's snapshot is sampled for the HTML report, ms. */
const SAMPLE_MS = 50;

type Figure = [name: string, get: (r: Report) => number | null, unit: string];

const mmu100 = (r: Report) => r.guest?.mmu.find((m) => m.window_ms === 100)?.min_utilization ?? null;

export const FIGURES: Figure[] = [
  ["total time", (r) => r.total_ms, "ms"],
  ["setup", (r) => r.setup_ms, "ms"],
  ["downtime", (r) => r.downtime_ms, "ms"],
  ["pre-copy rounds", (r) => r.rounds.length, ""],
  ["bytes on the wire", (r) => r.bytes_sent / 1048576, "MiB"],
  ["pages sent", (r) => r.pages_sent, ""],
  ["pages re-sent", (r) => r.pages_resent, ""],
  ["demand faults", (r) => r.demand_faults, ""],
  ["fault latency p50", (r) => r.fault_latency_us.p50, "µs"],
  ["fault latency p99", (r) => r.fault_latency_us.p99, "µs"],
  ["vCPU blocktime", (r) => r.blocktime_ms, "ms"],
  ["guest work lost", (r) => r.guest?.work_lost_vcpu_s ?? null, "vCPU-s"],
  ["guest utilization", (r) => (r.guest ? r.guest.utilization * 100 : null), "%"],
  ["guest MMU 100 ms", (r) => { const m = mmu100(r); return m === null ? null : m * 100; }, "%"],
];

/** (sim − real) / real; null when it says nothing (no figure, or real 0 and sim not). */
export function relativeError(sim: number | null, real: number | null): number | null {
  if (sim === null || real === null) return null;
  if (real === 0) return sim === 0 ? 0 : null;
  return (sim - real) / real;
}

const num = (x: number | null, unit: string) => (x === null ? "–" : `${Number.isInteger(x) ? x : x.toFixed(x >= 100 ? 1 : 3)}${unit ? ` ${unit}` : ""}`);
const rel = (e: number | null) => (e === null ? "–" : `${e >= 0 ? "+" : ""}${(e * 100).toFixed(1)} %`);

function linkText(r: Report): string {
  return r.link?.text ?? r.real_link?.text ?? r.peer ?? "?";
}

export function compareRealTable(sim: Report, real: Report): string {
  const head = `| ${sim.workload}, ${sim.mode} | simulated (${linkText(sim)}) | real (${linkText(real)}) | relative error |`;
  const rows = FIGURES.map(([name, get, unit]) => `| ${name} | ${num(get(sim), unit)} | ${num(get(real), unit)} | ${rel(relativeError(get(sim), get(real)))} |`);
  return [head, "| --- | --- | --- | --- |", ...rows, `| outcome | ${sim.outcome}, verified ${String(sim.verified)} | ${real.outcome}, verified ${String(real.verified)} | |`].join("\n");
}

interface RealRun {
  workload: Workload;
  choices: SimChoices;
  steps: number | undefined;
  peer: { host: string; port: number };
  link: { kind: "loopback" | "peer"; text: string };
  log: (line: string) => void;
}

async function runReal(o: RealRun): Promise<RunRecording> {
  const agent = await SourceAgent.start({
    workload: o.workload,
    mode: o.choices.mode,
    seed: o.choices.seed,
    steps: o.steps,
    peer: o.peer,
    options: o.choices.options,
    log: o.log,
    link: o.link,
  });
  const samples = new SampleLog();
  const poll = setInterval(() => samples.add(agent.snapshot()), SAMPLE_MS);
  try {
    const report = await agent.migrate();
    samples.add(agent.snapshot());
    return samples.recording("real", report, null);
  } finally {
    clearInterval(poll);
    await agent.close();
  }
}

async function runDemoReal(o: Omit<RealRun, "peer" | "link">): Promise<RunRecording> {
  const link = { kind: "loopback" as const, text: "loopback (ppsim real --demo)" };
  const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
  // --prealloc: the demo's destination populates the guest's memory before it listens, as the simulated one does.
  const prealloc = o.choices.destPopulated === true ? o.workload.memBytes : undefined;
  if (!existsSync(bin)) {
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { once: true, log: o.log, prealloc });
    try {
      return await runReal({ ...o, peer: { host: "127.0.0.1", port: dest.port }, link });
    } finally {
      await dest.close();
    }
  }
  const dest = await spawnDemoDestination(bin, o.log, ["--insecure", ...(prealloc === undefined ? [] : ["--prealloc", String(prealloc)])]);
  try {
    return await runReal({ ...o, peer: { host: "127.0.0.1", port: dest.port }, link });
  } finally {
    await dest.finish(30_000);
  }
}

/**
 * The workload with its vCPUs as fast as the real guest's were in warmup
 * (`stepsPerS`, all vCPUs): every generated phase's step time scaled by the
 * first phase's measured/nominal ratio (the warmup runs the first phase).
 * Trace phases keep their own speed.
 */
export function atGuestRate(w: Workload, stepsPerS: number): Workload {
  const first = w.phases[0];
  if (first === undefined || first.trace !== undefined) return w;
  const stepUs = (ph: { computeNs: number }) => ph.computeNs * 1e-3 + ACCESS_US;
  const factor = ((w.vcpus * 1e6) / stepsPerS) / stepUs(first);
  if (!(factor > 0 && Number.isFinite(factor))) return w;
  return { ...w, phases: w.phases.map((ph) => (ph.trace !== undefined ? ph : { ...ph, computeNs: Math.max(0, (stepUs(ph) * factor - ACCESS_US) * 1000) })) };
}

function checkRealFlags(flags: CompareRealFlags): void {
  if ((flags.peer === undefined) === (flags.demo !== true)) throw new UsageError("compare --real needs exactly one of --peer HOST:PORT or --demo");
  if (flags.outage !== undefined && flags.outage.length > 0) throw new UsageError("compare --real: --outage is for the simulator only");
}

/** The real run of `compare --real` alone, with what the simulator needs to predict it. */
export async function runRealLikeCompare(flags: CompareRealFlags, log: (line: string) => void): Promise<{ choices: SimChoices; workload: Workload; real: RunRecording }> {
  checkRealFlags(flags);
  const choices = parseSimFlags(flags);
  const workload = workloadFor(choices);
  const steps = flags.steps === undefined ? undefined : Number(flags.steps);
  if (steps !== undefined && !(Number.isSafeInteger(steps) && steps >= 1)) throw new UsageError(`--steps must be an integer ≥ 1, got "${flags.steps}"`);
  const base = { workload, choices, steps, log };
  const real =
    flags.peer !== undefined
      ? await runReal({ ...base, peer: parseHostPort("peer", flags.peer), link: { kind: "peer", text: `peer ${flags.peer}` } })
      : await runDemoReal(base);
  return { choices, workload, real };
}

/** Both runs, the real one first (the simulator is quick and deterministic). */
export async function compareReal(flags: CompareRealFlags, log: (line: string) => void): Promise<{ sim: RunRecording; real: RunRecording }> {
  checkRealFlags(flags);
  const choices = parseSimFlags(flags);
  // Both ends on this host (--demo) and no --host: the shipped profile with the cores as they are now,
  // measured just before the run (~2 s; on a shared machine they change from minute to minute).
  const host = choices.host !== undefined ? choices.host : flags.demo === true ? (await calibrate({ reps: 1, pages: 4096, cpuOnly: true })).profile : DEFAULT_HOST;
  const { workload, real } = await runRealLikeCompare(flags, log);
  return { sim: simulateLikeReal(choices, workload, real.report, host), real };
}

/**
 * The simulator's prediction of a real run: its host's costs (`host`) and
 * its guest's speed (the real guest's vCPUs share the host's cores with the
 * agents: the rate it measured in warmup), with the real back end's defaults.
 */
export function simulateLikeReal(choices: SimChoices, workload: Workload, real: Report, host: HostProfile | null): RunRecording {
  const rate = real.guest_rate_steps_s;
  const cfg = simConfig(choices, rate !== undefined && rate > 0 ? atGuestRate(workload, rate) : workload);
  return recordSimulation(new Simulation({ ...cfg, host, options: { ...REAL_DEFAULTS, ...cfg.options } }), "sim");
}

export async function runCompareReal(flags: CompareRealFlags, out: (line: string) => void): Promise<number> {
  const lines: string[] = [];
  const { sim, real } = await compareReal(flags, (l) => lines.push(l));
  if (flags.json) out(JSON.stringify({ sim: sim.report, real: real.report }, null, 2));
  else out(compareRealTable(sim.report, real.report));
  if (flags.report !== undefined) {
    writeHtmlReport(flags.report, `ppsim compare --real: ${sim.report.workload}, ${sim.report.mode}`, [sim, real]);
    if (!flags.json) out(`HTML report: ${flags.report}`);
  }
  const ok = real.report.outcome === "completed" && real.report.verified === true && sim.report.verified !== false;
  if (!ok) for (const l of lines) process.stderr.write(`  ${l}\n`);
  return ok ? 0 : 1;
}
