/**
 * Demand-fault service: what a fault costs with requests on their own urgent
 * channel versus queued behind bulk pages, and how much the background order
 * (linear, or prefetching around faults) and hybrid cut the faults, set
 * against the review's estimate "stall = 2 × latency × faults".
 *
 *   npm run build && node dist/bench/fault-service.js [LINK]
 */
import type { MigrationOptions } from "../src/engine/options.js";
import { parseLink } from "../src/sim/link.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { printBench, type Row } from "./table.js";

const linkText = process.argv[2] ?? "1Gbit,0.1ms";
const link = parseLink(linkText);
const variants: [string, Partial<MigrationOptions>, boolean][] = [
  ["post-copy, shared channel, linear", { mode: "postcopy", urgentChannel: false, backgroundOrder: "linear" }, true],
  ["post-copy, urgent channel, linear", { mode: "postcopy", backgroundOrder: "linear" }, false],
  ["post-copy, urgent channel, prefetch", { mode: "postcopy", backgroundOrder: "neighbourhood" }, false],
  ["hybrid, urgent channel, prefetch", { mode: "hybrid", backgroundOrder: "neighbourhood" }, false],
];
const rows: Row[] = [];
for (const name of ["web-server", "memory-scan", "database"]) {
  const workload = loadWorkload(new URL(`../../examples/${name}.json`, import.meta.url).pathname);
  for (const [label, options, shared] of variants) {
    const r = simulate({ workload, options, link: { ...link, sharedChannel: shared }, seed: 1 });
    const naiveMs = (2 * link.latencyUs * r.demand_faults) / 1000;
    rows.push({
      workload: name,
      variant: label,
      demand_faults: r.demand_faults,
      fault_p50_us: r.fault_latency_us.p50,
      fault_p99_us: r.fault_latency_us.p99,
      "2×latency×faults_ms": Number(naiveMs.toFixed(1)),
      blocktime_ms: r.blocktime_ms,
      guest_work_lost_vcpu_s: r.guest?.work_lost_vcpu_s ?? null,
      guest_mmu_100ms: r.guest?.mmu.find((m) => m.window_ms === 100)?.min_utilization ?? null,
      total_ms: r.total_ms,
      verified: r.verified as boolean,
    });
  }
}
printBench("fault-service", `node dist/bench/fault-service.js ${linkText}`, { link: linkText }, rows);
