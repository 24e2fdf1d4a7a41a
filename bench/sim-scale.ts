/**
 * How the simulator's wall time and memory grow with guest size and with
 * vCPU count (the current simulator, as it is). Each point runs in a fresh
 * Node process so its peak RSS is its own; beside it, the same process's
 * baseline (Node plus ppsim loaded, nothing simulated) and a fixed reference
 * loop timed in the same process, so a slow (shared) machine shows as a slow
 * reference rather than as a slow simulator. CPU time is given beside wall
 * time: the simulator is one thread, so on a shared machine its CPU time is
 * what it costs, and wall time adds what other processes took from it.
 *
 *   npm run build && node dist/bench/sim-scale.js [SIZES_GIB] [VCPUS] [MODES]
 *   e.g. node dist/bench/sim-scale.js 1,4,16,64 1,4,16,64 postcopy,precopy,hybrid
 *   one point: node dist/bench/sim-scale.js --one web-server 1024 4 postcopy 40   (40 min virtual-time limit)
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseLink } from "../src/sim/link.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { withMemory } from "../src/workload/types.js";
import { referenceLoopMs } from "./ref-loop.js";
import { printBench, type Row } from "./table.js";

const GiB = 1024 ** 3;
const LINK = "10Gbit,0.1ms";

/**
 * Transparent huge pages, as this process sees them (Linux; 0 elsewhere): the
 * system's count of huge pages given at a fault (every process's), and this
 * process's anonymous memory mapped by huge pages. Whether the large typed
 * arrays got them decides how many of their random accesses miss the TLB
 * (docs/sim-scaling.md, GLIBC_TUNABLES).
 */
function thpFaults(): number {
  try {
    return Number(/^thp_fault_alloc (\d+)$/m.exec(readFileSync("/proc/vmstat", "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}
function anonHugeBytes(): number {
  try {
    return 1024 * Number(/^AnonHugePages:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/smaps_rollup", "utf8"))?.[1] ?? 0);
  } catch {
    return 0;
  }
}

function one(workloadName: string, gib: number, vcpus: number, mode: string, maxVirtualMs?: number): void {
  const base = loadWorkload(fileURLToPath(new URL(`../../examples/${workloadName}.json`, import.meta.url)));
  const workload = { ...withMemory(base, gib * GiB), vcpus };
  const refMs = referenceLoopMs();
  const rssBaseline = process.memoryUsage().rss;
  const thp0 = thpFaults();
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const r = simulate({ workload, options: { mode: mode as "postcopy" }, link: parseLink(LINK), seed: 1, maxVirtualMs });
  const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const cpuS = (cpu.user + cpu.system) / 1e6;
  const sim = r.sim as { events: number; guest_accesses: number };
  const peakRss = process.resourceUsage().maxRSS * 1024;
  // Read while the simulation's arrays may still be mapped; the system-wide fault count says whether huge pages were given at all.
  const hugeBytes = anonHugeBytes();
  const thpFaultsDuring = thpFaults() - thp0;
  process.stdout.write(JSON.stringify({ wallS, cpuS, userS: cpu.user / 1e6, sysS: cpu.system / 1e6, hugeBytes, thpFaultsDuring, refMs, rssBaseline, peakRss, events: sim.events, accesses: sim.guest_accesses, totalMs: r.total_ms, outcome: r.outcome, verified: r.verified, pagesSent: r.pages_sent, faults: r.demand_faults, rounds: r.rounds.length }));
}

if (process.argv[2] === "--one") {
  // Optional 7th argument: virtual-time limit in minutes (1 TiB over 10 Gbit/s needs more than the default 10).
  one(process.argv[3], Number(process.argv[4]), Number(process.argv[5]), process.argv[6], process.argv[7] === undefined ? undefined : Number(process.argv[7]) * 60_000);
} else {
  const sizes = (process.argv[2] ?? "1,2,4,8,16,32").split(",").map(Number);
  const vcpuCounts = (process.argv[3] ?? "1,2,4,8,16,32,64").split(",").map(Number);
  const modes = (process.argv[4] ?? "postcopy,precopy,hybrid").split(",");
  const rows: Row[] = [];
  const point = (axis: string, workload: string, gib: number, vcpus: number, mode: string) => {
    const out = execFileSync(process.execPath, ["--max-old-space-size=16384", fileURLToPath(import.meta.url), "--one", workload, String(gib), String(vcpus), mode], { encoding: "utf8", maxBuffer: 1 << 20 });
    const p = JSON.parse(out) as { wallS: number; cpuS: number; refMs: number; rssBaseline: number; peakRss: number; events: number; accesses: number; totalMs: number; outcome: string; verified: boolean; pagesSent: number; faults: number; rounds: number };
    const pages = (gib * GiB) / 4096;
    const row: Row = {
      axis,
      mode,
      guest_gib: gib,
      vcpus,
      simulated_s: Number((p.totalMs / 1000).toFixed(2)),
      wall_s: Number(p.wallS.toFixed(2)),
      cpu_s: Number(p.cpuS.toFixed(2)),
      ref_loop_ms: Math.round(p.refMs),
      queue_events: p.events,
      page_events_per_cpu_s: Math.round((p.pagesSent + p.faults + p.accesses) / p.cpuS),
      peak_rss_mib: Math.round(p.peakRss / 1048576),
      baseline_rss_mib: Math.round(p.rssBaseline / 1048576),
      bytes_per_page: Number(((p.peakRss - p.rssBaseline) / pages).toFixed(1)),
      outcome: p.outcome,
      verified: p.verified,
    };
    rows.push(row);
    process.stderr.write(JSON.stringify(row) + "\n");
  };
  for (const mode of modes) for (const gib of sizes) point("size", "web-server", gib, 4, mode);
  for (const vcpus of vcpuCounts) point("vcpus", "web-server", 4, vcpus, "postcopy");
  printBench("sim-scale", `node dist/bench/sim-scale.js ${sizes.join(",")} ${vcpuCounts.join(",")} ${modes.join(",")}`, { link: LINK, workload: "web-server (4 vCPUs on the size axis, 4 GiB on the vCPU axis)", node: process.version }, rows);
}
