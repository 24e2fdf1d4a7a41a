/**
 * How fast the simulator runs: wall time to simulate post-copy migrations of
 * growing guests over 10 Gbit/s, and simulated page events per wall second.
 *
 *   npm run build && node dist/bench/sim-speed.js
 */
import { loadWorkload } from "../src/workload/parse.js";
import { simulate } from "../src/sim/simulation.js";
import { printBench, type Row } from "./table.js";

const GiB = 1024 ** 3;
const sizes = (process.argv[2] ?? "1,4,16").split(",").map(Number);
const rows: Row[] = [];
for (const workloadName of ["web-server", "database"]) {
  const base = loadWorkload(new URL(`../../examples/${workloadName}.json`, import.meta.url).pathname);
  for (const gib of sizes) {
    const workload = { ...base, memBytes: gib * GiB, pageCount: (gib * GiB) / base.pageSize };
    const t0 = process.hrtime.bigint();
    const r = simulate({ workload, options: { mode: "postcopy" }, link: { bandwidthBytesPerSec: 1.25e9, latencyUs: 100 }, seed: 1 });
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const sim = r.sim as { events: number; guest_accesses: number };
    // Page events: each page delivered, plus each guest access (every one checks presence and may stall).
    const pageEvents = r.pages_sent + r.demand_faults + sim.guest_accesses;
    rows.push({
      workload: workloadName,
      guest_gib: gib,
      simulated_s: r.total_ms / 1000,
      wall_s: Number(wallS.toFixed(2)),
      queue_events: sim.events,
      page_events: pageEvents,
      page_events_per_wall_s: Math.round(pageEvents / wallS),
      verified: r.verified as boolean,
    });
  }
}
printBench("sim-speed", "node dist/bench/sim-speed.js", { link: "10 Gbit/s, 100 µs", mode: "postcopy", node: process.version }, rows);
