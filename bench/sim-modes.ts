/**
 * The mission's trade-off in numbers: each example workload, each mode, one
 * link (default 1 Gbit/s, 0.1 ms one way).
 *
 *   npm run build && node dist/bench/sim-modes.js [LINK]
 */
import { MODES } from "../src/engine/messages.js";
import { parseLink } from "../src/sim/link.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { printBench, type Row } from "./table.js";

const linkText = process.argv[2] ?? "1Gbit,0.1ms";
const link = parseLink(linkText);
const rows: Row[] = [];
for (const name of ["idle", "web-server", "memory-scan", "database"]) {
  const workload = loadWorkload(new URL(`../../examples/${name}.json`, import.meta.url).pathname);
  for (const mode of MODES) {
    const r = simulate({ workload, options: { mode }, link: { ...link }, seed: 1 });
    rows.push({
      workload: name,
      mode,
      switchover: r.switchover_reason,
      rounds: r.rounds.length,
      throttle: Number(r.throttle ?? 0),
      downtime_ms: r.downtime_ms,
      total_ms: r.total_ms,
      mib_sent: Number((r.bytes_sent / 1048576).toFixed(1)),
      pages_resent: r.pages_resent,
      demand_faults: r.demand_faults,
      fault_p99_us: r.fault_latency_us.p99,
      blocktime_ms: r.blocktime_ms,
      guest_work_lost_vcpu_s: r.guest?.work_lost_vcpu_s ?? null,
      guest_mmu_100ms: r.guest?.mmu.find((m) => m.window_ms === 100)?.min_utilization ?? null,
      verified: r.verified as boolean,
    });
  }
}
printBench("sim-modes", `node dist/bench/sim-modes.js ${linkText}`, { link: linkText, memory: "1 GiB each (the examples)" }, rows);
