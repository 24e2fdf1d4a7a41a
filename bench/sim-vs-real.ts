/**
 * Issue 10 part 4's validation: how well the simulator predicts the real
 * back end, over a matrix of example workloads × sizes × modes, each real
 * run over loopback (`ppsim compare --real --demo`) beside the two
 * predictions: the shipped profile (DEFAULT_HOST) and the shipped profile
 * with the cores' figures (src/sim/host-cpu.ts) measured just before and
 * just after that run (`ppsim calibrate --cpu-only`, one repetition each;
 * the prediction charges their mean). Beside every run, the
 * machine's limits of that moment: the cores available, loopback TCP
 * MiB/s and round trip (bench/loopback.ts), the load average. The simulated
 * link is the loopback measured beside it (its MiB/s, half its round trip).
 *
 *   npm run build && flock /work/briefs/bench.lock -c 'node dist/bench/sim-vs-real.js \
 *     [--workloads web-server,database,idle,memory-scan] [--sizes 256MiB,1GiB,4GiB] \
 *     [--modes precopy,postcopy,hybrid] [--runs 3] [--max-s SECONDS] [--json FILE]'
 *
 * Split a long matrix into several calls (each ≤ 8 minutes under the lock)
 * and join the JSON files with --merge A.json,B.json (prints the tables of
 * all of them, bench/netns.ts's --host-cpu runs too; with --repredict, the
 * stored real runs beside this build's predictions). The error table
 * (bench/sim-vs-real-table.ts): per cell the median over its runs of each
 * figure's relative error (sim − real) / real, with the min–max; goals of
 * issue 10: total and bytes within 10 %, demand faults 15 %, rounds ±1,
 * fault p50 25 %.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { benchArgs } from "./args.js";
import { runRealLikeCompare, simulateLikeReal } from "../src/cli/compare-real.js";
import { DEFAULT_HOST } from "../src/sim/host.js";
import { loopback } from "./loopback.js";
import { bracketed, goalError, GOALS, loopHop, measureCores, pct, printTables, repredict, type Run } from "./sim-vs-real-table.js";

async function one(workload: string, size: string, mode: string, run: number, log: (l: string) => void): Promise<Run> {
  const at = new Date().toISOString();
  const load1 = loadavg()[0];
  const lo = await loopback({ pings: 300, bytes: 64 * 1024 * 1024 });
  const link = `${lo.mib_s}MiB/s,${(lo.rtt_us / 2 / 1000).toFixed(4)}ms`;
  const flags = { trace: new URL(`../../examples/${workload}.json`, import.meta.url).pathname, mode, memory: size, link, real: true, demo: true };
  // The cores just before and just after the real run; the prediction charges their mean. Then the shipped profile's prediction of the same run.
  const before = await measureCores();
  const { choices, workload: w, real } = await runRealLikeCompare(flags, log);
  const after = await measureCores();
  // The lane's faults skip the event loops' share of the link's latency (sim-vs-real-table.ts loopHop): all of it here.
  const hop = loopHop("loopback", lo.rtt_us / 2);
  const profile = { ...bracketed(before, after), ...hop };
  return {
    link: "loopback",
    workload,
    size,
    mode,
    run,
    at,
    limits: { cores_available: profile.cores_available ?? 0, loopback_mib_s: lo.mib_s, loopback_rtt_us: lo.rtt_us, load1 },
    profile,
    profile_before: before,
    profile_after: after,
    real: real.report,
    sim_cpu: simulateLikeReal(choices, w, real.report, profile).report,
    sim_default: simulateLikeReal(choices, w, real.report, { ...DEFAULT_HOST, ...hop }).report,
  };
}

async function main(): Promise<void> {
  const { values: v } = benchArgs({
    options: { workloads: { type: "string" }, sizes: { type: "string" }, modes: { type: "string" }, runs: { type: "string" }, json: { type: "string" }, merge: { type: "string" }, "max-s": { type: "string" }, repredict: { type: "boolean" } },
  });
  if (v.merge !== undefined) {
    const stored = v.merge.split(",").flatMap((f) => (JSON.parse(readFileSync(f, "utf8")) as { runs: Run[] }).runs);
    // --repredict: the stored real runs beside this build's predictions (--json FILE keeps them).
    const runs = v.repredict === true ? stored.map(repredict) : stored;
    if (v.repredict === true && v.json !== undefined) writeFileSync(v.json, JSON.stringify({ bench: "sim-vs-real", command: `node dist/bench/sim-vs-real.js ${process.argv.slice(2).join(" ")}`, repredicted: new Date().toISOString(), runs }, null, 2));
    return printTables(runs);
  }
  const workloads = (v.workloads ?? "web-server,database,idle,memory-scan").split(",");
  const sizes = (v.sizes ?? "256MiB").split(",");
  const modes = (v.modes ?? "precopy,postcopy,hybrid").split(",");
  const n = Number(v.runs ?? 3);
  // No run starts after this many seconds: a call stays within its turn under the shared lock.
  const deadline = Date.now() + Number(v["max-s"] ?? 1e9) * 1000;
  const runs: Run[] = [];
  const started = new Date().toISOString();
  const command = `node dist/bench/sim-vs-real.js ${process.argv.slice(2).join(" ")}`;
  for (let i = 0; i < n; i++)
    for (const w of workloads)
      for (const s of sizes)
        for (const m of modes) {
          if (Date.now() > deadline) {
            process.stderr.write(`${w} ${s} ${m} #${i + 1}: not run (--max-s)\n`);
            continue;
          }
          const lines: string[] = [];
          try {
            const r = await one(w, s, m, i + 1, (l) => lines.push(l));
            runs.push(r);
            // After every run: a call cut short by its time limit keeps what it measured.
            if (v.json !== undefined) writeFileSync(v.json, JSON.stringify({ bench: "sim-vs-real", command, started, ended: r.at, runs }, null, 2));
            const e = (k: number) => pct(goalError(GOALS[k][0], GOALS[k][1], r.sim_cpu, r.real));
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
