/**
 * One real post-copy for interleaved A/B pairs: one JSON line with the run's
 * UTC window, load before and after, verification, total time, background
 * throughput and the per-thread CPU account per process and role
 * (bench/cpu-account.ts). Run each build's copy in turn, under the bench lock:
 *
 *   node BEFORE/dist/bench/postcopy-once.js --label before; node AFTER/dist/bench/postcopy-once.js --label after
 *     [--workload bench/workloads/rewrite-512m.json] [--size 1GiB] [--connections 3]
 *
 * It does not measure the machine's limits (bench/real-postcopy.ts does).
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { scaleWorkload } from "../src/real/plan.js";
import { loadWorkload } from "../src/workload/parse.js";
import { parseByteSize } from "../src/workload/size.js";
import { runCpu } from "./cpu-account.js";
import { withDemoMigration } from "./demo-run.js";

const { values } = parseArgs({ options: { label: { type: "string" }, workload: { type: "string" }, size: { type: "string" }, connections: { type: "string" } } });
const size = parseByteSize(values.size ?? "1GiB");
if (typeof size === "string") throw new Error(`--size: ${size}`);
const connections = Number(values.connections ?? 3);
const w = scaleWorkload(loadWorkload(values.workload ?? "bench/workloads/rewrite-512m.json"), size);
process.env.PPSIM_DATAPLANE = "native";
process.env.PPSIM_FAULT_LANE = "1";
const load = (): string => readFileSync("/proc/loadavg", "utf8").trim();
const load0 = load();
const from = new Date().toISOString();
const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
const r = await withDemoMigration(bin, w, "postcopy", (a) => a.migrate(), 60_000, { connections });
const to = new Date().toISOString();
const cpu = runCpu(r);
const role = (p: string, name: string): number => cpu?.background.find((g) => g.process === p && g.role === name)?.cpu_ms ?? 0;
console.log(
  JSON.stringify({
    label: values.label ?? "", from, to, load0, load1: load(), outcome: r.outcome, verified: r.verified, total_ms: r.total_ms, background_mib_s: r.background_mib_s, downtime_ms: r.downtime_ms,
    bg_cpu_ms: cpu === null ? null : Math.round(cpu.background.reduce((a, g) => a + g.cpu_ms, 0)),
    dest_loop: role("destination agent", "loop"), dest_helpers: role("destination agent", "node helpers"), dest_bulk: role("destination agent", "bulk"),
    src_loop: role("source agent", "loop"), src_helpers: role("source agent", "node helpers"), src_bulk: role("source agent", "bulk"), dest_vcpu: role("destination guest", "vcpu"),
    cpu,
  }),
);
