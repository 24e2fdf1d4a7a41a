/**
 * Issue 10 part 4's validation: how well the simulator predicts the real
 * back end, over a matrix of example workloads × sizes × modes, each real
 * run over loopback (`ppsim compare --real --demo`) beside the two
 * predictions: the shipped profile (DEFAULT_HOST) and the shipped profile
 * with the cores' figures (src/sim/host-cpu.ts) measured just before that
 * run (`ppsim calibrate --cpu-only`, one repetition). Beside every run, the
 * machine's limits of that moment: the cores available, loopback TCP
 * MiB/s and round trip (bench/loopback.ts), the load average. The simulated
 * link is the loopback measured beside it (its MiB/s, half its round trip).
 *
 *   npm run build && flock /work/briefs/bench.lock -c 'node dist/bench/sim-vs-real.js \
 *     [--workloads web-server,database,idle,memory-scan] [--sizes 256MiB,1GiB,4GiB] \
 *     [--modes precopy,postcopy,hybrid] [--runs 3] [--json FILE]'
 *
 * Split a long matrix into several calls (each ≤ 10 minutes under the lock)
 * and join the JSON files with --merge A.json,B.json (prints the tables of
 * all of them). The error table: per cell the median over its runs of each
 * figure's relative error (sim − real) / real, with the min–max; goals of
 * issue 10: total and bytes within 10 %, demand faults 15 %, rounds ±1,
 * fault p50 25 %.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { Report } from "../src/engine/report.js";
import { compareReal, relativeError, simulateLikeReal } from "../src/cli/compare-real.js";
import { parseSimFlags } from "../src/cli/sim-args.js";
import { workloadFor } from "../src/cli/sim-command.js";
import { calibrate } from "../src/real/calibrate.js";
import { DEFAULT_HOST, type HostProfile } from "../src/sim/host.js";
import { loopback } from "./loopback.js";
import { markdownTable, median, type Row } from "./table.js";

interface Run {
  workload: string;
  size: string;
  mode: string;
  run: number;
  at: string;
  limits: { cores_available: number; loopback_mib_s: number; loopback_rtt_us: number; load1: number };
  profile: HostProfile;
  real: Report;
  sim_cpu: Report;
  sim_default: Report;
}

/** The figures the goals name: [key, get, goal (relative; rounds: absolute)]. */
const GOALS: [string, (r: Report) => number, number][] = [
  ["total", (r) => r.total_ms, 0.1],
  ["bytes", (r) => r.bytes_sent, 0.1],
  ["faults", (r) => r.demand_faults, 0.15],
  ["rounds", (r) => r.rounds.length, 1],
  ["p50", (r) => r.fault_latency_us.p50, 0.25],
];

function err(key: string, get: (r: Report) => number, sim: Report, real: Report): number | null {
  if (key === "rounds") return get(sim) - get(real);
  if (key === "p50" && real.demand_faults === 0 && sim.demand_faults === 0) return null;
  return relativeError(get(sim), get(real));
}

async function one(workload: string, size: string, mode: string, run: number, log: (l: string) => void): Promise<Run> {
  const at = new Date().toISOString();
  const load1 = loadavg()[0];
  const cal = await calibrate({ reps: 1, pages: 4096, cpuOnly: true });
  const lo = await loopback({ pings: 300, bytes: 64 * 1024 * 1024 });
  const link = `${lo.mib_s}MiB/s,${(lo.rtt_us / 2 / 1000).toFixed(4)}ms`;
  const flags = { trace: new URL(`../../examples/${workload}.json`, import.meta.url).pathname, mode, memory: size, link, real: true, demo: true };
  // The real run and the prediction with the cores measured beside it; then the shipped profile's prediction of the same run.
  const path = `${process.env.TMPDIR ?? "/tmp"}/sim-vs-real-host.json`;
  writeFileSync(path, JSON.stringify(cal.profile));
  const { sim, real } = await compareReal({ ...flags, host: path }, log);
  const choices = parseSimFlags(flags);
  const simDefault = simulateLikeReal(choices, workloadFor(choices), real.report, DEFAULT_HOST);
  return {
    workload,
    size,
    mode,
    run,
    at,
    limits: { cores_available: cal.profile.cores_available ?? 0, loopback_mib_s: lo.mib_s, loopback_rtt_us: lo.rtt_us, load1 },
    profile: cal.profile,
    real: real.report,
    sim_cpu: sim.report,
    sim_default: simDefault.report,
  };
}

const pct = (x: number | null) => (x === null ? "–" : `${x >= 0 ? "+" : ""}${(x * 100).toFixed(0)} %`);
const fmt = (key: string, x: number | null) => (key === "rounds" ? (x === null ? "–" : `${x >= 0 ? "+" : ""}${x}`) : pct(x));

/** Per cell: the median error of each goal figure over its runs (min–max), for one prediction. */
function errorRows(runs: Run[], which: "sim_cpu" | "sim_default"): Row[] {
  const cells = new Map<string, Run[]>();
  for (const r of runs) {
    const k = `${r.workload}|${r.size}|${r.mode}`;
    cells.set(k, [...(cells.get(k) ?? []), r]);
  }
  const rows: Row[] = [];
  for (const rs of cells.values()) {
    const row: Row = { workload: rs[0].workload, size: rs[0].size, mode: rs[0].mode, runs: rs.length };
    let met = true;
    for (const [key, get, goal] of GOALS) {
      const es = rs.map((r) => err(key, get, r[which], r.real)).filter((e): e is number => e !== null);
      if (es.length === 0) {
        row[key] = "–";
        continue;
      }
      const m = median(es);
      if (Math.abs(m) > goal) met = false;
      row[key] = es.length === 1 ? fmt(key, m) : `${fmt(key, m)} (${fmt(key, Math.min(...es))}…${fmt(key, Math.max(...es))})`;
    }
    row["real total ms"] = rs.map((r) => Math.round(r.real.total_ms)).join(", ");
    row["cores avail."] = rs.map((r) => r.limits.cores_available.toFixed(2)).join(", ");
    row["goals met"] = met;
    rows.push(row);
  }
  return rows;
}

function printTables(runs: Run[]): void {
  console.log("\nWith the cores measured beside each run (DEFAULT_HOST + calibrate --cpu-only):\n");
  console.log(markdownTable(errorRows(runs, "sim_cpu")));
  console.log("\nThe shipped profile alone (DEFAULT_HOST), same real runs:\n");
  console.log(markdownTable(errorRows(runs, "sim_default")));
}

async function main(): Promise<void> {
  const { values: v } = parseArgs({
    options: { workloads: { type: "string" }, sizes: { type: "string" }, modes: { type: "string" }, runs: { type: "string" }, json: { type: "string" }, merge: { type: "string" } },
  });
  if (v.merge !== undefined) {
    const runs = v.merge.split(",").flatMap((f) => (JSON.parse(readFileSync(f, "utf8")) as { runs: Run[] }).runs);
    return printTables(runs);
  }
  const workloads = (v.workloads ?? "web-server,database,idle,memory-scan").split(",");
  const sizes = (v.sizes ?? "256MiB").split(",");
  const modes = (v.modes ?? "precopy,postcopy,hybrid").split(",");
  const n = Number(v.runs ?? 3);
  const runs: Run[] = [];
  const started = new Date().toISOString();
  const command = `node dist/bench/sim-vs-real.js ${process.argv.slice(2).join(" ")}`;
  for (let i = 0; i < n; i++)
    for (const w of workloads)
      for (const s of sizes)
        for (const m of modes) {
          const lines: string[] = [];
          try {
            const r = await one(w, s, m, i + 1, (l) => lines.push(l));
            runs.push(r);
            // After every run: a call cut short by its time limit keeps what it measured.
            if (v.json !== undefined) writeFileSync(v.json, JSON.stringify({ bench: "sim-vs-real", command, started, ended: r.at, runs }, null, 2));
            const e = (k: number) => pct(err(GOALS[k][0], GOALS[k][1], r.sim_cpu, r.real));
            process.stderr.write(`${w} ${s} ${m} #${i + 1}: real ${r.real.total_ms.toFixed(0)} ms, sim ${r.sim_cpu.total_ms.toFixed(0)} ms (${e(0)}), faults ${r.sim_cpu.demand_faults}/${r.real.demand_faults}, cores ${r.limits.cores_available.toFixed(2)}\n`);
          } catch (x) {
            process.stderr.write(`${w} ${s} ${m} #${i + 1}: failed: ${String(x)}\n${lines.join("\n")}\n`);
          }
        }
  const out = { bench: "sim-vs-real", command, started, ended: new Date().toISOString(), runs };
  if (v.json !== undefined) writeFileSync(v.json, JSON.stringify(out, null, 2));
  console.log(JSON.stringify({ bench: "sim-vs-real", command, started, ended: out.ended, runs: runs.length, json: v.json ?? null }));
  printTables(runs);
}

await main();
