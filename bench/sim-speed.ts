/**
 * How fast the simulator runs: wall time to simulate migrations of growing
 * guests over 10 Gbit/s, and simulated page events per wall second (and per
 * CPU second, with the reference loop of ref-loop.ts timed just before each
 * run: on a shared machine wall time includes other processes').
 *
 *   npm run build && node dist/bench/sim-speed.js [--sizes 1,4,16] [--workloads web-server,database] [--mode postcopy] [--content on|off] [--max-virtual-min 10]
 *
 * --sizes      guest sizes in GiB (a bare list, `sim-speed.js 16`, is read the same way)
 * --workloads  example workloads (examples/NAME.json)
 * --mode       precopy, postcopy or hybrid (default postcopy)
 * --content    off: the guests keep no page contents (SimConfig.trackContent
 *              false): the same run, not checked at the end (`verified` null)
 * --max-virtual-min  the simulator's virtual-time limit (default 10 min; a
 *              1 TiB post-copy at 10 Gbit/s needs about 15)
 *
 * `peak_rss_mib` is the process's peak so far: a row's own run's peak when
 * it is the process's only or largest run (one size, one workload).
 */
import { existsSync } from "node:fs";
import { loadWorkload } from "../src/workload/parse.js";
import { simulate } from "../src/sim/simulation.js";
import { benchArgs, refuse } from "./args.js";
import { referenceLoopMs } from "./ref-loop.js";
import { printBench, type Row } from "./table.js";

const GiB = 1024 ** 3;
const config = {
  allowPositionals: true,
  options: { sizes: { type: "string" }, workloads: { type: "string" }, mode: { type: "string" }, content: { type: "string" }, "max-virtual-min": { type: "string" } },
} as const;
const { values, positionals } = benchArgs(config);
if (positionals.length > 1 || (positionals.length === 1 && values.sizes !== undefined)) refuse(`give the sizes once (--sizes LIST or one bare LIST), got ${[values.sizes, ...positionals].filter(Boolean).join(" and ")}`, config);
const sizesText = values.sizes ?? positionals[0] ?? "1,4,16";
const sizes = sizesText.split(",").map((s) => Number(s));
// A page count must be a whole number of 4 KiB pages, and a size the machine can hold a few times over.
for (const [i, gib] of sizes.entries()) {
  if (!(Number.isFinite(gib) && gib > 0 && Number.isInteger(gib * 262144) && gib <= 16384)) refuse(`--sizes: "${sizesText.split(",")[i]}" is not a guest size in GiB (a positive number, at most 16384)`, config);
}
const mode = values.mode ?? "postcopy";
if (mode !== "precopy" && mode !== "postcopy" && mode !== "hybrid") refuse(`--mode must be precopy, postcopy or hybrid, got "${mode}"`, config);
const content = values.content ?? "on";
if (content !== "on" && content !== "off") refuse(`--content must be on or off, got "${content}"`, config);
const maxVirtualMin = Number(values["max-virtual-min"] ?? 10);
if (!(maxVirtualMin > 0 && Number.isFinite(maxVirtualMin))) refuse(`--max-virtual-min must be a positive number of minutes, got "${values["max-virtual-min"]}"`, config);
const workloads = (values.workloads ?? "web-server,database").split(",");
const paths = workloads.map((name) => {
  const path = new URL(`../../examples/${name}.json`, import.meta.url).pathname;
  if (!/^[a-z0-9-]+$/.test(name) || !existsSync(path)) refuse(`--workloads: no example workload "${name}" (examples/NAME.json)`, config);
  return path;
});

const rows: Row[] = [];
for (const [w, workloadName] of workloads.entries()) {
  const base = loadWorkload(paths[w]);
  for (const gib of sizes) {
    const workload = { ...base, memBytes: gib * GiB, pageCount: (gib * GiB) / base.pageSize };
    const refMs = referenceLoopMs();
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = simulate({ workload, options: { mode }, link: { bandwidthBytesPerSec: 1.25e9, latencyUs: 100 }, seed: 1, maxVirtualMs: maxVirtualMin * 60_000, trackContent: content === "on" });
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
      peak_rss_mib: Math.round(process.resourceUsage().maxRSS / 1024),
      verified: r.verified,
    });
  }
}
printBench("sim-speed", `node dist/bench/sim-speed.js --sizes ${sizes.join(",")} --workloads ${workloads.join(",")} --mode ${mode} --content ${content} --max-virtual-min ${maxVirtualMin}`, { link: "10 Gbit/s, 100 µs", mode, content, node: process.version }, rows);
