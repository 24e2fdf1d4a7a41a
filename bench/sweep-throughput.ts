/**
 * Sweep throughput: simulations per hour with 1 worker thread and with 2,
 * on the same grid, repeated. Beside it the machine's own parallel limit
 * measured in the same run: a fixed CPU-bound loop on 1 thread, then on 2
 * threads at once — on a shared machine 2 threads rarely get 2 cores.
 * And 1 worker on the same grid with check_memory false (no page contents
 * kept: the same runs, their memory unchecked).
 *
 *   npm run build && node dist/bench/sweep-throughput.js [REPEATS]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { parseGrid } from "../src/sweep/grid.js";
import { runSweep } from "../src/sweep/sweep.js";
import { printBench, type Row } from "./table.js";

const GRID = {
  ppsim_sweep: 1,
  name: "throughput",
  workloads: ["idle.json", "web-server.json", "memory-scan.json", "database.json"],
  memory: ["64MiB"],
  links: ["1Gbit,0.1ms", "10Gbit,0.2ms"],
  modes: ["precopy", "postcopy", "hybrid"],
  seeds: [1, 2],
};

const LOOP = `
const { parentPort } = require("node:worker_threads");
const a = new Uint32Array(1 << 20);
const t0 = process.hrtime.bigint();
let x = 1;
for (let i = 0; i < 200000000; i++) { x = (Math.imul(x, 1103515245) + 12345) >>> 0; a[x & 0xfffff] += 1; }
parentPort.postMessage(Number(process.hrtime.bigint() - t0) / 1e6);
`;

/** Loops per second with n threads running the same fixed loop at once. */
async function loopRate(n: number): Promise<number> {
  const t0 = Date.now();
  await Promise.all(Array.from({ length: n }, () => new Promise((resolve, reject) => {
    const w = new Worker(LOOP, { eval: true });
    w.once("message", resolve);
    w.once("error", reject);
  })));
  return n / ((Date.now() - t0) / 1000);
}

const repeats = Number(process.argv[2] ?? 3);
const origin = join(fileURLToPath(new URL("../../examples/", import.meta.url)), "throughput-grid.json");
const grid = parseGrid(GRID, origin);
const unchecked = parseGrid({ ...GRID, check_memory: false }, origin);
async function perHourOf(g: typeof grid, workers: number): Promise<number> {
  const out = mkdtempSync(join(tmpdir(), "ppsim-tput-"));
  const { meta } = await runSweep(g, { workers, shard: null, out, progress: null });
  rmSync(out, { recursive: true, force: true });
  return (meta.runs / meta.wall_s) * 3600;
}
const rows: Row[] = [];
for (let rep = 1; rep <= repeats; rep++) {
  const limit1 = await loopRate(1);
  const limit2 = await loopRate(2);
  const perHour: Record<number, number> = {};
  for (const workers of [1, 2]) perHour[workers] = await perHourOf(grid, workers);
  const uncheckedPerHour = await perHourOf(unchecked, 1);
  rows.push({
    repeat: rep,
    runs: grid.runs.length,
    sims_per_hour_1w: Math.round(perHour[1]),
    sims_per_hour_2w: Math.round(perHour[2]),
    speedup_2w: Number((perHour[2] / perHour[1]).toFixed(2)),
    machine_limit_speedup_2t: Number((limit2 / limit1).toFixed(2)),
    share_of_limit: Number((perHour[2] / perHour[1] / (limit2 / limit1)).toFixed(2)),
    sims_per_hour_1w_unchecked: Math.round(uncheckedPerHour),
    unchecked_vs_checked_1w: Number((uncheckedPerHour / perHour[1]).toFixed(2)),
  });
  process.stderr.write(JSON.stringify(rows[rows.length - 1]) + "\n");
}
printBench("sweep-throughput", `node dist/bench/sweep-throughput.js ${repeats}`, { grid: GRID, node: process.version }, rows);
