/**
 * How fast the simulator runs: wall time to simulate post-copy migrations of
 * growing guests over 10 Gbit/s, and simulated page events per wall second
 * (and per CPU second, with the reference loop of ref-loop.ts timed just
 * before each run: on a shared machine wall time includes other processes').
 *
 *   npm run build && node dist/bench/sim-speed.js
 */
import { loadWorkload } from "../src/workload/parse.js";
import { simulate } from "../src/sim/simulation.js";
import { referenceLoopMs } from "./ref-loop.js";
import { printBench, type Row } from "./table.js";

const GiB = 1024 ** 3;
const sizes = (process.argv[2] ?? "1,4,16").split(",").map(Number);
const rows: Row[] = [];
for (const workloadName of ["web-server", "database"]) {
  const base = loadWorkload(new URL(`../../examples/${workloadName}.json`, import.meta.url).pathname);
  for (const gib of sizes) {
    const workload = { ...base, memBytes: gib * GiB, pageCount: (gib * GiB) / base.pageSize };
    const refMs = referenceLoopMs();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = simulate({ workload, options: { mode: "postcopy" }, link: { bandwidthBytesPerSec: 1.25e9, latencyUs: 100 }, seed: 1 });
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const cpu = process.cpuUsage(cpu0);
    const cpuS = (cpu.user + cpu.system) / 1e6;
    const sim = r.sim as { events: number; guest_accesses: number };
    // Page events: each page delivered, plus each guest access (every one checks presence and may stall).
    const pageEvents = r.pages_sent + r.demand_faults + sim.guest_accesses;
    rows.push({
      workload: workloadName,
      guest_gib: gib,
      simulated_s: r.total_ms / 1000,
      wall_s: Number(wallS.toFixed(2)),
      cpu_s: Number(cpuS.toFixed(2)),
      ref_loop_ms: Math.round(refMs),
      queue_events: sim.events,
      page_events: pageEvents,
      page_events_per_wall_s: Math.round(pageEvents / wallS),
      page_events_per_cpu_s: Math.round(pageEvents / cpuS),
      verified: r.verified as boolean,
    });
  }
}
printBench("sim-speed", "node dist/bench/sim-speed.js", { link: "10 Gbit/s, 100 µs", mode: "postcopy", node: process.version }, rows);
