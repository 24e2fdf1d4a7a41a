/**
 * The source's send ways side by side (issue 9, docs/native.md "Send ways"):
 * preadv + send, writev from a mapping, sendfile, splice (PPSIM_SEND_WAY),
 * interleaved way by way so that the machine's noise falls on all of them.
 *
 * Limits (`--limit-runs N`, default 3): loopback TCP through the data plane's
 * threads, the pages dropped and installed with UFFDIO_COPY into a registered
 * mapping, at each of `--limit-connections` (default 1,2), with this process's
 * CPU time per GiB moved (senders and receivers are both in it), and Node's
 * loopback TCP once per round. Then real migrations (`--sizes`, `--runs`,
 * `--mode`, `--connections`; `--sizes none` skips them).
 *
 *   npm run build && node dist/bench/send-ways.js [--ways preadv,writev,sendfile,splice] [--limit-runs 3]
 *     [--limit-connections 1,2] [--sizes 1GiB] [--runs 3] [--mode postcopy] [--connections 1,2] [--batch-pages 16,64] [--json FILE]
 *
 * `--batch-pages` runs each way with each of the engine's batch sizes (pages per background message),
 * `--connections` with each count of bulk connections. "÷ native dropped" is against the limit at
 * the same way and count when the limits measured it (`--limit-connections`).
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import { MODES, type Mode } from "../src/engine/messages.js";
import type { Report } from "../src/engine/report.js";
import type { SourceAgent } from "../src/real/source-agent.js";
import { SEND_WAYS, type SendWay } from "../src/real/dataplane.js";
import { scaleWorkload } from "../src/real/plan.js";
import { loadWorkload } from "../src/workload/parse.js";
import { formatBytes, parseByteSize } from "../src/workload/size.js";
import { withDemoMigration } from "./demo-run.js";
import { loopback, loopbackNative } from "./loopback.js";
import { markdownTable, median, type Row } from "./table.js";
import { startThreadCpu, type ThreadCpuRow } from "./thread-cpu.js";

const MiB = 1024 * 1024;
const LIMIT_BYTES = 512 * MiB;

const list = (text: string | undefined, dflt: string): string[] => (text ?? dflt).split(",").filter((x) => x !== "");

function spread(xs: number[], digits = 0): string {
  const f = (x: number): string => x.toFixed(digits);
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

interface LimitRun { way: SendWay; connections: number; into: "dropped" | "copy"; mib_s: number; cpu_s_per_gib: number }
interface MigrationRun { way: SendWay; batch: number; connections: number; size: string; outcome: string; verified: boolean | null; total_ms: number; background_mib_s: number; downtime_ms: number; fault_p50_us: number; fault_p99_us: number; wire_over_nonzero: number; rounds: number; cpu: ThreadCpuRow[] }

/**
 * migrate(), with the CPU of every thread sampled from the engine's start to its end (the driver's
 * `ended`): not the warmup before it, nor the wait for the destination's guest and the unmigrated
 * reference run after it. The driver is the agent's private field: a bench-only peek.
 */
async function migrateSampled(a: SourceAgent): Promise<{ result: Report; rows: ThreadCpuRow[] }> {
  const peek = a as unknown as { driver: { ended: Promise<unknown> } | null };
  const done = a.migrate();
  let finished = false;
  void done.finally(() => (finished = true));
  while (peek.driver === null && !finished) await new Promise((r) => setTimeout(r, 2));
  let rows: ThreadCpuRow[] = [];
  if (peek.driver !== null) {
    const s = startThreadCpu();
    await peek.driver.ended;
    rows = s.stop();
  }
  return { result: await done, rows };
}

async function main(): Promise<void> {
  const { values } = benchArgs({
    options: {
      ways: { type: "string" }, "limit-runs": { type: "string" }, "limit-connections": { type: "string" },
      "batch-pages": { type: "string" }, workload: { type: "string" }, sizes: { type: "string" }, runs: { type: "string" }, mode: { type: "string" }, connections: { type: "string" }, json: { type: "string" },
    },
  });
  const ways = list(values.ways, SEND_WAYS.join(",")) as SendWay[];
  for (const w of ways) if (!SEND_WAYS.includes(w)) throw new Error(`--ways takes ${SEND_WAYS.join(", ")}`);
  const limitRuns = Number(values["limit-runs"] ?? 3);
  const limitConns = list(values["limit-connections"], "1,2").map(Number);
  const mode = (values.mode ?? "postcopy") as Mode;
  if (!MODES.includes(mode)) throw new Error(`--mode takes one of ${MODES.join(", ")}`);
  const connectionsList = list(values.connections, "2").map(Number);
  const sizes = values.sizes === "none" ? [] : list(values.sizes, "1GiB").map((s) => {
    const b = parseByteSize(s);
    if (typeof b === "string") throw new Error(`--sizes: ${s} ${b}`);
    return b;
  });
  const runs = Number(values.runs ?? 3);
  // The engine's pages per background message (batchPages, 16 by default): A/B beside the ways.
  const batches = list(values["batch-pages"], "16").map(Number);
  const file = values.workload ?? "bench/workloads/rewrite-512m.json";
  const from = new Date().toISOString();

  const node: number[] = [];
  const limits: LimitRun[] = [];
  for (let i = 0; i < limitRuns; i++) {
    node.push((await loopback({ pings: 100, bytes: LIMIT_BYTES })).mib_s);
    for (const c of limitConns)
      for (const into of ["dropped", "copy"] as const)
        for (const way of ways) {
          const r = await loopbackNative({ install: into === "copy", into: into === "copy" ? "copy" : undefined, connections: c, way, bytes: LIMIT_BYTES });
          limits.push({ way, connections: c, into, mib_s: r.mib_s, cpu_s_per_gib: r.cpu_ms / 1000 / (LIMIT_BYTES / (1024 * MiB)) });
          console.error(`limit ${way} ${c} conn ${into}: ${r.mib_s} MiB/s, ${r.cpu_ms} ms CPU`);
        }
  }

  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
  const migrations: MigrationRun[] = [];
  for (const mem of sizes) {
    const workload = scaleWorkload(loadWorkload(file), mem);
    for (let i = 0; i < runs; i++)
      for (const connections of connectionsList)
      for (const batch of batches)
      for (const way of ways) {
        process.env.PPSIM_SEND_WAY = way;  // the source agent runs in this process: its senders read it
        const { result: r, rows: cpu } = await withDemoMigration(bin, workload, mode, (a) => migrateSampled(a), 60_000, { connections, options: { batchPages: batch } });
        const run: MigrationRun = {
          way, batch, connections, size: formatBytes(mem), outcome: r.outcome, verified: r.verified, total_ms: r.total_ms, background_mib_s: Math.round(r.background_mib_s), downtime_ms: r.downtime_ms,
          fault_p50_us: r.fault_latency_us.p50, fault_p99_us: r.fault_latency_us.p99, rounds: r.rounds.length, cpu,
          wire_over_nonzero: Math.round((r.bytes_sent / Math.max(1, (r.pages_sent - r.pages_zero) * r.page_size)) * 10000) / 10000,
        };
        migrations.push(run);
        console.error(`${run.size} ${mode} ${way} batch ${batch} ×${connections} run ${i + 1}: ${r.outcome}, verified ${String(r.verified)}, total ${r.total_ms} ms, background ${run.background_mib_s} MiB/s, downtime ${r.downtime_ms} ms`);
      }
    delete process.env.PPSIM_SEND_WAY;
  }
  const window = { from, to: new Date().toISOString() };

  const limitRows: Row[] = [];
  for (const c of limitConns)
    for (const into of ["dropped", "copy"] as const)
      for (const way of ways) {
        const rs = limits.filter((l) => l.way === way && l.connections === c && l.into === into);
        if (rs.length === 0) continue;
        limitRows.push({ connections: c, receiver: into, way, "MiB/s": spread(rs.map((r) => r.mib_s)), "CPU s per GiB": spread(rs.map((r) => r.cpu_s_per_gib), 2) });
      }
  const migRows: Row[] = [];
  for (const mem of sizes)
    for (const connections of connectionsList)
    for (const batch of batches)
    for (const way of ways) {
      const rs = migrations.filter((m) => m.way === way && m.batch === batch && m.connections === connections && m.size === formatBytes(mem));
      const nd = median(limits.filter((l) => l.way === way && l.connections === connections && l.into === "dropped").map((l) => l.mib_s));
      migRows.push({
        size: formatBytes(mem), mode, way, "batch pages": batch, connections, verified: `${rs.filter((r) => r.outcome === "completed" && r.verified === true).length}/${rs.length}`,
        "total ms": spread(rs.map((r) => r.total_ms)), "background MiB/s": spread(rs.map((r) => r.background_mib_s)),
        "÷ native dropped (same way)": Number.isNaN(nd) ? "—" : spread(rs.map((r) => r.background_mib_s / nd), 2),
        "downtime ms": spread(rs.map((r) => r.downtime_ms), 1), "fault p50 / p99 µs": `${spread(rs.map((r) => r.fault_p50_us))} / ${spread(rs.map((r) => r.fault_p99_us))}`,
        rounds: spread(rs.map((r) => r.rounds)), "wire ÷ non-zero": spread(rs.map((r) => r.wire_over_nonzero), 4),
      });
    }
  // CPU per role and thread during migrate(), per way: medians over the runs.
  const cpuRows: Row[] = [];
  for (const mem of sizes)
    for (const connections of connectionsList)
    for (const batch of batches)
    for (const way of ways) {
      const rs = migrations.filter((m) => m.way === way && m.batch === batch && m.connections === connections && m.size === formatBytes(mem));
      const keys = [...new Set(rs.flatMap((r) => r.cpu.map((c) => `${c.role}/${c.thread}`)))];
      for (const k of keys) {
        const at = (r: MigrationRun) => r.cpu.find((c) => `${c.role}/${c.thread}` === k);
        cpuRows.push({ size: formatBytes(mem), way, batch, connections, "role/thread": k, threads: median(rs.map((r) => at(r)?.threads ?? 0)), "CPU ms": spread(rs.map((r) => at(r)?.cpu_ms ?? 0)), "waiting for a CPU ms": spread(rs.map((r) => at(r)?.wait_ms ?? 0)) });
      }
      cpuRows.push({ size: formatBytes(mem), way, batch, connections, "role/thread": "all", threads: 0, "CPU ms": spread(rs.map((r) => r.cpu.reduce((a, c) => a + c.cpu_ms, 0))), "waiting for a CPU ms": spread(rs.map((r) => r.cpu.reduce((a, c) => a + c.wait_ms, 0))) });
    }
  const result = { bench: "send-ways", command: `node dist/bench/send-ways.js ${process.argv.slice(2).join(" ")}`, window, node_tcp_mib_s: node, limits, migrations };
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
  console.log(`\nNode loopback TCP: ${node.join(", ")} MiB/s\n`);
  console.log(markdownTable(limitRows));
  if (migRows.length > 0) console.log("\n" + markdownTable(migRows) + "\n\n" + markdownTable(cpuRows));
  console.log(`\n(${window.from} – ${window.to})`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
