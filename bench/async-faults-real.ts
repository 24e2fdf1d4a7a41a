/**
 * Async page faults on the native guest beside the simulator: a workload of
 * examples/async-faults/ migrated for real on loopback in post-copy with
 * async faults on and off (N runs each), and simulated on a link modelled
 * after the loopback measured in the same run.
 *
 *   npm run build && node dist/bench/async-faults-real.js [--workload FILE] [--memory 256MiB] [--runs N]
 *
 * The real guest counts work in steps (its progress log), the simulator in
 * step time: work lost compares across the two only when every task's steps
 * cost the same, as in random-threads.json (the default).
 */
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import type { Report } from "../src/engine/report.js";
import { REAL_DEFAULTS } from "../src/real/source-agent.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { parseByteSize } from "../src/workload/size.js";
import { withMemory, type Workload } from "../src/workload/types.js";
import { loopback } from "./loopback.js";
import { demoPostcopy } from "./demo-run.js";
import { median, printBench, type Row } from "./table.js";

const MiB = 1024 * 1024;

const spread = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;

async function main(): Promise<void> {
  const { values } = benchArgs({ options: { workload: { type: "string" }, memory: { type: "string" }, runs: { type: "string" } } });
  const file = values.workload ?? "examples/async-faults/random-threads.json";
  const mem = parseByteSize(values.memory ?? "256MiB");
  if (typeof mem === "string") throw new Error(`--memory: ${mem}`);
  const runs = Number(values.runs ?? 3);
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
  const base = withMemory(loadWorkload(file), mem);
  const tasks = base.tasks as NonNullable<Workload["tasks"]>;
  const lo = await loopback();
  const link = { bandwidthBytesPerSec: lo.mib_s * MiB, latencyUs: lo.rtt_us / 2 };
  const rows: Row[] = [];
  for (const asyncFaults of [false, true]) {
    const w = { ...base, tasks: { ...tasks, asyncFaults } };
    const reports: Report[] = [];
    for (let i = 0; i < runs; i++) {
      const r = await demoPostcopy(bin, w);
      reports.push(r);
      console.error(`${w.name} async ${asyncFaults ? "on" : "off"} run ${i + 1}: ${r.outcome}, verified ${String(r.verified)}, work lost ${r.guest?.work_lost_vcpu_s ?? "?"} vCPU-s, total ${r.total_ms} ms`);
    }
    const sim = simulate({ workload: w, options: { ...REAL_DEFAULTS, mode: "postcopy" }, link, seed: 1 });
    const lost = reports.map((r) => r.guest?.work_lost_vcpu_s ?? NaN);
    rows.push({
      workload: w.name,
      async: asyncFaults ? "on" : "off",
      verified: `${reports.filter((r) => r.verified === true).length}/${reports.length}`,
      "real work lost vCPU-s (median; spread)": `${median(lost)}; ${spread(lost)}`,
      "real utilization (median)": median(reports.map((r) => r.guest?.utilization ?? NaN)),
      "real demand faults (median)": median(reports.map((r) => r.demand_faults)),
      "real total ms (median)": median(reports.map((r) => r.total_ms)),
      "sim work lost vCPU-s": sim.guest?.work_lost_vcpu_s ?? null,
      "sim vCPU blocktime ms": sim.blocktime_ms,
      "sim demand faults": sim.demand_faults,
      "sim total ms": sim.total_ms,
    });
  }
  const command = `node dist/bench/async-faults-real.js --workload ${file} --memory ${values.memory ?? "256MiB"} --runs ${runs}`;
  console.log(`loopback TCP (Node ↔ Node): ${lo.mib_s} MiB/s, round trip p50 ${lo.rtt_us} µs`);
  printBench("async-faults-real", command, { loopback: lo }, rows);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
