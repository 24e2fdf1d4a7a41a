/**
 * Demand faults on 4 KiB and 2 MiB pages, the simulator and the real back
 * end side by side, for a random-access and a sequential workload.
 *
 *   npm run build && node dist/bench/huge-pages.js [--runs N] [--json FILE]
 *
 * Each workload of examples/huge-pages/ runs post-copy as written (2 MiB
 * pages moved whole, guest RAM on hugetlbfs) and with its huge_pages removed
 * (4 KiB pages): for real on loopback (the destination agent a child process,
 * `ppsim real --listen --once`), N runs each; in the simulator on a link
 * modelled after the loopback measured in the same run, and on QEMU's
 * published 10 Gbit/s setup (the anchor: 0.57 ms per 4 KiB fault, 4.96 ms per
 * 2 MiB one). Measured beside: loopback TCP throughput and round trip between
 * two Node processes, and what moving one page over it costs at that rate.
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import type { Report } from "../src/engine/report.js";
import { REAL_DEFAULTS } from "../src/real/source-agent.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { loopback } from "./loopback.js";
import { demoPostcopy } from "./demo-run.js";
import { median, printBench, type Row } from "./table.js";

const MiB = 1024 * 1024;
const FILES = ["examples/huge-pages/random.json", "examples/huge-pages/sequential.json"];

const spread = (xs: number[]) => (xs.length === 0 ? "–" : `${Math.min(...xs)}–${Math.max(...xs)}`);
const ms = (us: number) => Math.round(us) / 1000;

async function main(): Promise<void> {
  const { values } = benchArgs({ options: { runs: { type: "string" }, json: { type: "string" } } });
  const runs = Number(values.runs ?? 3);
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
  const host = { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? "?", kernel: release() };
  const lo = await loopback();
  const loLink = { bandwidthBytesPerSec: lo.mib_s * MiB, latencyUs: lo.rtt_us / 2 };
  const tenGbit = { bandwidthBytesPerSec: 1.25e9, latencyUs: 50 };
  const rows: Row[] = [];
  for (const file of FILES) {
    const huge = loadWorkload(file);
    const { hugePages: _, ...small } = huge;
    for (const [pages, w] of [["4 KiB", small], ["2 MiB", huge]] as const) {
      const reports: Report[] = [];
      for (let i = 0; i < runs; i++) {
        const r = await demoPostcopy(bin, w);
        reports.push(r);
        console.error(`${huge.name} ${pages} run ${i + 1}: ${r.outcome}, verified ${String(r.verified)}, faults ${r.demand_faults}, p50 ${r.fault_latency_us.p50} µs, total ${r.total_ms} ms`);
      }
      const sim = simulate({ workload: w, options: { ...REAL_DEFAULTS, mode: "postcopy" }, link: loLink, seed: 1 });
      const anchor = simulate({ workload: w, options: { mode: "postcopy" }, link: tenGbit, seed: 1 });
      const pageBytes = pages === "4 KiB" ? 4096 : 2 * MiB;
      rows.push({
        workload: huge.name,
        pages,
        verified: `${reports.filter((r) => r.verified === true).length}/${reports.length}`,
        "real fault p50 ms (median; spread)": `${ms(median(reports.map((r) => r.fault_latency_us.p50)))}; ${spread(reports.map((r) => ms(r.fault_latency_us.p50)))}`,
        "real fault p99 ms (median)": ms(median(reports.map((r) => r.fault_latency_us.p99))),
        "sim on loopback fault p50 / p99 ms": `${ms(sim.fault_latency_us.p50)} / ${ms(sim.fault_latency_us.p99)}`,
        "one page at loopback rate ms": Math.round((pageBytes / (lo.mib_s * MiB) + lo.rtt_us / 1e6) * 1e6) / 1000,
        "real faults (median)": median(reports.map((r) => r.demand_faults)),
        "sim faults": sim.demand_faults,
        "real total ms (median; spread)": `${median(reports.map((r) => r.total_ms))}; ${spread(reports.map((r) => r.total_ms))}`,
        "sim on loopback total ms": sim.total_ms,
        "sim 10 Gbit/s fault p50 ms": ms(anchor.fault_latency_us.p50),
        "sim 10 Gbit/s total ms": anchor.total_ms,
        "real work lost vCPU-s (median)": median(reports.map((r) => r.guest?.work_lost_vcpu_s ?? NaN)),
        "sim on loopback work lost vCPU-s": sim.guest?.work_lost_vcpu_s ?? null,
      });
    }
  }
  const command = `node dist/bench/huge-pages.js --runs ${runs}`;
  const meta = { host, loopback: lo, anchor_qemu_10gbit_ms: { "4KiB": 0.57, "2MiB": 4.96, "1GiB": 649 } };
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify({ command, ...meta, rows }, null, 2) + "\n");
  console.log(`loopback TCP (Node ↔ Node): ${lo.mib_s} MiB/s, round trip p50 ${lo.rtt_us} µs`);
  printBench("huge-pages", command, meta, rows);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
