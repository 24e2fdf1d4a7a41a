/**
 * The destination's install modes side by side (issue 9, docs/native.md
 * "Install modes"): real post-copy on loopback with PPSIM_INSTALL=copy and
 * =continue, interleaved run by run (copy, continue, copy, …) so that the
 * machine's noise falls on both, beside the native data plane's limits
 * measured in the same run: loopback TCP through the data plane's threads
 * with the pages dropped, written into a memfd (pwrite, as before a guest
 * runs), and installed into a registered mapping as once a guest runs —
 * UFFDIO_COPY (mode copy) or pwritev + UFFDIO_CONTINUE (mode continue) —
 * and Node's loopback TCP.
 *
 *   npm run build && node dist/bench/real-install.js [--workload FILE] [--sizes 1GiB,4GiB] [--runs 3]
 *     [--mode postcopy] [--connections 2] [--install copy,continue] [--no-limits] [--json FILE]
 *
 * Prints a JSON report and a markdown table (one row per size and mode:
 * medians with min–max over the runs).
 */
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import { MODES, type Mode } from "../src/engine/messages.js";
import type { Report, SwitchoverBreakdown } from "../src/engine/report.js";
import { scaleWorkload } from "../src/real/plan.js";
import { loadWorkload } from "../src/workload/parse.js";
import { formatBytes, parseByteSize } from "../src/workload/size.js";
import { withDemoMigration } from "./demo-run.js";
import { loopback, loopbackNative } from "./loopback.js";
import { markdownTable, median, type Row } from "./table.js";

const MiB = 1024 * 1024;

interface RunFigures {
  install: string;
  outcome: string;
  verified: boolean | null;
  total_ms: number;
  downtime_ms: number;
  background_mib_s: number;
  fault_p50_us: number;
  fault_p99_us: number;
  fault_max_us: number;
  demand_faults: number;
  wire_over_nonzero: number;
  /** Where the downtime went: pause / engine / to link / delivery / resume, ms (SourceAgent.switchoverBreakdown). */
  switchover: string;
}

function breakdown(b: SwitchoverBreakdown | null): string {
  return b === null ? "-" : [b.pause_ms, b.engine_ms, b.to_link_ms, b.delivery_ms, b.resume_ms].map((x) => x.toFixed(1)).join(" / ");
}

function figures(install: string, r: Report, b: SwitchoverBreakdown | null): RunFigures {
  return {
    install,
    outcome: r.outcome,
    verified: r.verified,
    total_ms: r.total_ms,
    downtime_ms: r.downtime_ms,
    background_mib_s: Math.round(r.background_mib_s),
    fault_p50_us: r.fault_latency_us.p50,
    fault_p99_us: r.fault_latency_us.p99,
    fault_max_us: r.fault_latency_us.max,
    demand_faults: r.demand_faults,
    wire_over_nonzero: Math.round((r.bytes_sent / Math.max(1, (r.pages_sent - r.pages_zero) * r.page_size)) * 10000) / 10000,
    switchover: breakdown(b),
  };
}

const list = (text: string | undefined, dflt: string): string[] => (text ?? dflt).split(",").filter((x) => x !== "");

/** "median (min–max)" of one figure over the runs. */
function spread(xs: number[], digits = 0): string {
  const f = (x: number): string => x.toFixed(digits);
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

async function limits(connections: number): Promise<Record<string, number>> {
  const n = (o: Parameters<typeof loopbackNative>[0]): Promise<number> => loopbackNative({ ...o, connections }).then((x) => x.mib_s);
  return {
    node_tcp: (await loopback({ pings: 200, bytes: 512 * MiB })).mib_s,
    native_dropped: await n({ install: false }),
    native_pwrite: await n({ install: true, into: "pwrite" }),
    native_copy: await n({ install: true, into: "copy" }),
    native_continue: await n({ install: true, into: "continue" }),
  };
}

async function main(): Promise<void> {
  const { values } = benchArgs({
    options: {
      workload: { type: "string" },
      sizes: { type: "string" },
      runs: { type: "string" },
      mode: { type: "string" },
      connections: { type: "string" },
      install: { type: "string" },
      "no-limits": { type: "boolean" },
      json: { type: "string" },
    },
  });
  const file = values.workload ?? "bench/workloads/rewrite-512m.json";
  const mode = (values.mode ?? "postcopy") as Mode;
  if (!MODES.includes(mode)) throw new Error(`--mode takes one of ${MODES.join(", ")}`);
  const connections = Number(values.connections ?? 2);
  if (!Number.isInteger(connections) || connections < 1 || connections > 8) throw new Error("--connections takes 1 … 8");
  const installs = list(values.install, "copy,continue");
  for (const m of installs) if (m !== "copy" && m !== "continue") throw new Error("--install takes copy, continue or both");
  const sizes = list(values.sizes, "1GiB,4GiB").map((s) => {
    const b = parseByteSize(s);
    if (typeof b === "string") throw new Error(`--sizes: ${s} ${b}`);
    return b;
  });
  const runs = Number(values.runs ?? 3);
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
  const from = new Date().toISOString();
  const limit = values["no-limits"] === true ? null : await limits(connections);
  const rows: { size: string; runs: RunFigures[] }[] = [];
  for (const mem of sizes) {
    const workload = scaleWorkload(loadWorkload(file), mem);
    const all: RunFigures[] = [];
    for (let i = 0; i < runs; i++) {
      for (const install of installs) {
        // The destination child inherits it (its agent's default install mode).
        process.env.PPSIM_INSTALL = install;
        const [r, b] = await withDemoMigration(bin, workload, mode, async (a) => [await a.migrate(), a.switchoverBreakdown] as const, 60_000, { connections });
        all.push(figures(install, r, b));
        console.error(`${formatBytes(mem)} ${install} run ${i + 1}: ${r.outcome}, verified ${String(r.verified)}, total ${r.total_ms} ms, background ${Math.round(r.background_mib_s)} MiB/s, downtime ${r.downtime_ms} ms (${breakdown(b)})`);
      }
    }
    delete process.env.PPSIM_INSTALL;
    rows.push({ size: formatBytes(mem), runs: all });
  }
  const window = { from, to: new Date().toISOString() };
  const table: Row[] = [];
  for (const row of rows) {
    for (const install of installs) {
      const rs = row.runs.filter((r) => r.install === install);
      const bg = rs.map((r) => r.background_mib_s);
      table.push({
        size: row.size,
        install,
        verified: `${rs.filter((r) => r.outcome === "completed" && r.verified === true).length}/${rs.length}`,
        "total ms": spread(rs.map((r) => r.total_ms)),
        "background MiB/s": spread(bg),
        "÷ native dropped": limit === null ? "—" : spread(bg.map((b) => b / limit.native_dropped), 2),
        "÷ Node TCP": limit === null ? "—" : spread(bg.map((b) => b / limit.node_tcp), 2),
        "fault p50 µs": spread(rs.map((r) => r.fault_p50_us)),
        "fault p99 µs": spread(rs.map((r) => r.fault_p99_us)),
        "downtime ms": spread(rs.map((r) => r.downtime_ms), 2),
        "wire ÷ non-zero": spread(rs.map((r) => r.wire_over_nonzero), 3),
      });
    }
  }
  const result = { bench: "real-install", command: `node dist/bench/real-install.js ${process.argv.slice(2).join(" ")}`, window, workload: file, mode, connections, limits_mib_s: limit, rows };
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(result, null, 2) + "\n");
  console.log(JSON.stringify(result, null, 2));
  console.log();
  if (limit !== null) console.log(markdownTable([{ ...limit, connections }]) + "\n");
  console.log(markdownTable(table));
  console.log(`\n(${window.from} – ${window.to})`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
