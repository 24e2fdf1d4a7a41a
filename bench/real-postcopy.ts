/**
 * Real post-copy on loopback, measured beside what bounds it, and beside the
 * simulator's figures for the same workload on a link modelled after the
 * measured loopback.
 *
 *   npm run build && node dist/bench/real-postcopy.js [--workload FILE[,FILE…]] [--sizes 256MiB,1GiB,4GiB,8GiB]
 *     [--runs N] [--mode postcopy,precopy,hybrid] [--connections 1,2,4] [--dataplane native,js] [--fault-lane on,off] [--prealloc off,on] [--json FILE]
 *
 * The issue's matrix, one command (issue 9): every workload × mode × size ×
 * data plane × bulk connection count, `--runs` each, back to back, each
 * row with the simulator's prediction beside it (same workload and options,
 * on a link of the native loopback figure for that many connections). For
 * each: a destination agent as a child process (`ppsim real
 * --listen 127.0.0.1:0 --once`, its own event loop as on another host), the
 * source agent here, post-copy. Beside it, measured in the same run: loopback
 * TCP throughput and round trip between two Node processes, and the local
 * userfaultfd fault round trip through Node (a pool thread faults, the
 * FaultReader hands it to JS, JS answers with UFFDIO_COPY) — the floor under
 * a demand fault's latency — and the first touch of a guest's worth of fresh
 * memory (bench/first-touch.ts: what every installed page pays the kernel, on
 * this VM the host too; each run's row has its destination receivers' CPU per
 * non-zero page beside it). Prints a JSON report and a markdown table.
 *
 * Issue 9 (the native data plane): beside Node's loopback figure, the same
 * loopback TCP with the data plane's own threads (native/src/bulk_*.cc) and
 * the bulk socket's options — once dropping the pages at the receiver (what
 * TCP and the two threads carry) and once installing them into a memfd (the
 * data plane's ceiling without an engine or a guest). `--dataplane
 * native,js` runs each size both ways (PPSIM_DATAPLANE at both ends), and
 * each run reports the source's memory peak and the pages it punched as they
 * left.
 */
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, release } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { MODES, type Mode } from "../src/engine/messages.js";
import type { Report, SwitchoverBreakdown } from "../src/engine/report.js";
import { faultRoundTrip } from "../src/real/calibrate.js";
import { firstTouch, type FirstTouch } from "./first-touch.js";
import { loopback, loopbackNative } from "./loopback.js";
import { DEFAULT_BULK_CONNECTIONS } from "../src/real/source-link.js";
import { scaleWorkload } from "../src/real/plan.js";
import { REAL_DEFAULTS } from "../src/real/source-agent.js";
import { withDemoMigration } from "./demo-run.js";
import { cpuTable, runCpu, type RunCpu } from "./cpu-account.js";
import { median } from "./table.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { formatBytes, parseByteSize } from "../src/workload/size.js";

const MiB = 1024 * 1024;

interface Run {
  report: Report;
  /** Source memfd bytes at their peak, and pages punched before completion. */
  source_peak_mib: number | null;
  punched_pages: number | null;
  /** The source memfd over the migration: [ms since the engine started, MiB] at each destination progress report. */
  source_mib_over_time: [number, number][];
  /** Where the downtime went (SourceAgent.switchoverBreakdown): the agents' legs, the guest's downtime and every stamp. */
  switchover: Breakdown;
  /** --prealloc on: how long the destination took to populate the guest's memory before it listened, ms. */
  prealloc_ms?: number | null;
}

async function migrateOnce(file: string, memBytes: number, bin: string, mode: Mode, dataplane: string, connections: number, lane: string, prealloc: boolean): Promise<Run> {
  // Both ends: the destination child inherits it.
  process.env.PPSIM_DATAPLANE = dataplane;
  process.env.PPSIM_FAULT_LANE = lane === "off" ? "0" : "1";
  const workload = scaleWorkload(loadWorkload(file), memBytes);
  let populateMs: number | null = null;
  return withDemoMigration(
    bin,
    workload,
    mode,
    async (agent) => {
      const report = await agent.migrate();
      const m = agent.sourceMemory;
      const t0 = m?.samples[0]?.at ?? 0;
      const over = (m?.samples ?? []).map((x): [number, number] => [Math.round((x.at - t0) / 1000), Math.round(x.bytes / MiB)]);
      return { report, source_peak_mib: m === null ? null : Math.round(m.peakBytes / MiB), punched_pages: m?.punchedPages ?? null, source_mib_over_time: over, switchover: agent.switchoverBreakdown };
    },
    60_000,
    { connections },
    {
      // --prealloc on: the destination populates the guest's memory before it listens (src/real/dest-prealloc.ts); its cost is kept beside the run.
      args: ["--insecure", ...(prealloc ? ["--prealloc", String(memBytes)] : [])],
      log: (l) => {
        const m = /populated ahead: \d+ MiB in (\d+) ms/.exec(l);
        if (m !== null) populateMs = Number(m[1]);
      },
    },
  ).then((r) => ({ ...r, prealloc_ms: populateMs }));
}

const list = (text: string | undefined, dflt: string): string[] => (text ?? dflt).split(",").filter((x) => x !== "");

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { workload: { type: "string" }, sizes: { type: "string" }, runs: { type: "string" }, mode: { type: "string" }, json: { type: "string" }, dataplane: { type: "string" }, connections: { type: "string" }, "fault-lane": { type: "string" }, prealloc: { type: "string" } } });
  // --fault-lane on,off: each run of a row both ways, interleaved (run i with the lane, then without it).
  const laneList = list(values["fault-lane"], "on");
  for (const l of laneList) if (l !== "on" && l !== "off") throw new Error("--fault-lane takes on, off or both (on,off)");
  // --prealloc off,on: likewise each run without and with the destination's memory populated ahead.
  const preallocList = list(values.prealloc, "off");
  for (const l of preallocList) if (l !== "on" && l !== "off") throw new Error("--prealloc takes off, on or both (off,on)");
  const lanes = laneList.flatMap((lane) => preallocList.map((prealloc) => ({ lane, prealloc: prealloc === "on" })));
  const planes = list(values.dataplane, "native");
  for (const d of planes) if (d !== "native" && d !== "js") throw new Error("--dataplane takes native, js or both (native,js)");
  const modes = list(values.mode, "postcopy") as Mode[];
  for (const m of modes) if (!MODES.includes(m)) throw new Error(`--mode takes ${MODES.join(", ")} (comma-separated)`);
  const files = list(values.workload, "examples/web-server.json");
  const conns = list(values.connections, String(DEFAULT_BULK_CONNECTIONS)).map(Number);
  for (const c of conns) if (!Number.isInteger(c) || c < 1 || c > 8) throw new Error("--connections takes counts from 1 to 8 (comma-separated)");
  const sizes = list(values.sizes, "256MiB,1GiB,4GiB").map((s) => {
    const b = parseByteSize(s);
    if (typeof b === "string") throw new Error(`--sizes: ${s} ${b}`);
    return b;
  });
  const runs = Number(values.runs ?? 3);
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));

  const host = { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? "?", kernel: release() };
  const t0 = new Date().toISOString();
  // The machine's limits, measured first in this run: Node ↔ Node, and through the data plane's threads at each connection count.
  const lo = await loopback({ pings: 2000, bytes: 1024 * MiB });
  const native: Record<number, { dropped: number; installed: number }> = {};
  for (const c of conns) native[c] = { dropped: (await loopbackNative({ install: false, connections: c })).mib_s, installed: (await loopbackNative({ install: true, connections: c })).mib_s };
  const rt = await faultRoundTrip(4096);
  // As much as a 1 GiB guest's destination allocates: a smaller probe gets the pages freed last, warm (docs/real-benchmarks.md).
  const touch = firstTouch(1024);
  const rows: Row[] = [];
  for (const file of files) for (const mode of modes) for (const mem of sizes) for (const plane of planes) for (const c of plane === "js" ? [1] : conns) {
    const byLane: Run[][] = lanes.map(() => []);
    for (let i = 0; i < runs; i++) for (let k = 0; k < lanes.length; k++) byLane[k].push(await migrateOnce(file, mem, bin, mode, plane, c, lanes[k].lane, lanes[k].prealloc));
    for (let k = 0; k < lanes.length; k++) {
      const all = byLane[k];
      const { lane, prealloc } = lanes[k];
      const reports = all.map((r) => r.report);
      const ok = reports.filter((r) => r.outcome === "completed" && r.verified === true);
      // The run with the median total time stands for the row; every run's figures are kept.
      const pick = ok.length > 0 ? [...ok].sort((a, b) => a.total_ms - b.total_ms)[Math.floor((ok.length - 1) / 2)] : reports[0];
      const nonZeroBytes = (pick.pages_sent - pick.pages_zero) * pick.page_size;
      const limit = native[c]?.dropped ?? lo.mib_s;
      const sim = simulate({
        workload: scaleWorkload(loadWorkload(file), mem),
        options: { ...REAL_DEFAULTS, mode },
        link: { bandwidthBytesPerSec: limit * MiB, latencyUs: lo.rtt_us / 2 },
        seed: 1,
      });
      rows.push({
        workload: file,
        mode,
        mem: formatBytes(mem),
        dataplane: plane,
        connections: c,
        fault_lane: lane,
        prealloc,
        runs: all.map(({ report: r, source_peak_mib, punched_pages, source_mib_over_time, switchover, prealloc_ms }) => ({
          outcome: r.outcome, verified: r.verified, reason: r.reason, downtime_ms: r.downtime_ms, total_ms: r.total_ms, rounds: r.rounds.length, throttle: r.throttle, background_mib_s: r.background_mib_s,
          fault_p50_us: r.fault_latency_us.p50, fault_p99_us: r.fault_latency_us.p99, fault_max_us: r.fault_latency_us.max, source_peak_mib, punched_pages, source_mib_over_time, switchover,
          receiver_cpu_ns_per_nonzero_page: receiverNsPerPage(r),
          prealloc_ms: prealloc_ms ?? null,
          wire_over_nonzero: Math.round((r.bytes_sent / Math.max(1, (r.pages_sent - r.pages_zero) * r.page_size)) * 10000) / 10000,
          background_over_loopback: Math.round((r.background_mib_s / lo.mib_s) * 100) / 100,
          background_over_native_loopback: Math.round((r.background_mib_s / limit) * 100) / 100,
          // Where each host's CPU went, per process and thread role (the threads themselves: real.real_cpu_threads of the median run).
          cpu: runCpu(r),
        })),
        verified_runs: `${ok.length}/${reports.length}`,
        downtime_ms_median: median(reports.map((r) => r.downtime_ms)),
        real: pick,
        wire_over_nonzero: Math.round((pick.bytes_sent / nonZeroBytes) * 10000) / 10000,
        sim: { downtime_ms: sim.downtime_ms, total_ms: sim.total_ms, demand_faults: sim.demand_faults, fault_latency_us: sim.fault_latency_us, background_mib_s: sim.background_mib_s, bytes_sent: sim.bytes_sent, verified: sim.verified },
      });
      console.error(`${file} ${mode} ${formatBytes(mem)} (${plane}, ${c} conn, fault lane ${lane}${prealloc ? ", prealloc" : ""}): ${ok.length}/${reports.length} verified, downtime ${pick.downtime_ms} ms, total ${pick.total_ms} ms`);
    }
  }
  delete process.env.PPSIM_DATAPLANE;
  delete process.env.PPSIM_FAULT_LANE;
  const window = { from: t0, to: new Date().toISOString() };
  const result = { window, host, loopback: lo, loopback_native: native, uffd_round_trip_us: rt, first_touch: touch, options: REAL_DEFAULTS, rows };
  const json = JSON.stringify(result, null, 2);
  if (values.json !== undefined) writeFileSync(values.json, json + "\n");
  console.log(json);
  console.log(table(result.rows, lo, rt, native, window, touch));
  for (const r of result.rows) {
    const w = r.workload.replace(/^.*\//, "").replace(/\.json$/, "");
    console.log("\n" + cpuTable(`${w} ${r.mode} ${r.mem} (${r.dataplane}, ${r.connections} conn, fault lane ${r.fault_lane}${r.prealloc ? ", prealloc" : ""})`, r.real.mem_bytes, r.runs.map((x) => x.cpu)));
  }
}

type Breakdown = SwitchoverBreakdown | null;

/** The destination's bulk receiver threads' CPU over the whole migration per non-zero page sent, ns: where the first touch shows. */
function receiverNsPerPage(r: Report): number | null {
  const whole = runCpu(r)?.whole;
  const pages = r.pages_sent - r.pages_zero;
  if (whole === undefined || pages <= 0) return null;
  const ms = whole.filter((e) => e.process === "destination agent" && e.role === "bulk").reduce((a, e) => a + e.cpu_ms, 0);
  return Math.round((ms * 1e6) / pages);
}
type RunRow = { cpu: RunCpu | null; receiver_cpu_ns_per_nonzero_page: number | null; prealloc_ms: number | null; total_ms: number; downtime_ms: number; rounds: number; throttle: number; background_mib_s: number; background_over_native_loopback: number; fault_p50_us: number; fault_p99_us: number; fault_max_us: number; source_peak_mib: number | null; switchover: Breakdown };
type Row = { workload: string; mode: Mode; mem: string; dataplane: string; connections: number; fault_lane: string; prealloc: boolean; runs: RunRow[]; real: Report; sim: Record<string, unknown>; wire_over_nonzero: number; verified_runs: string; downtime_ms_median: number };

function breakdown(b: Breakdown): string {
  if (b === null) return "-";
  const parts = [b.pause_ms, b.engine_ms, b.to_link_ms, b.delivery_ms, b.resume_ms].map((x) => x.toFixed(1)).join(" / ");
  return b.vcpus_started_ms === undefined ? parts : `${parts} (${b.vcpus_started_ms.toFixed(1)})`;
}

/** The guest's downtime leg by leg (ms, from trace_us): PAUSE reply / engine + to link / frame's trip / dest. loop to engine / RESUME read / first step. */
export const GUEST_LEGS: [string, string][] = [
  ["source_last_park", "paused"],
  ["paused", "sent"],
  ["sent", "frame_at_destination"],
  ["frame_at_destination", "arrived"],
  ["arrived", "dest_resume_read"],
  ["dest_resume_read", "dest_first_step"],
];

function guestLegs(b: Breakdown): string {
  const t = b?.trace_us;
  if (b?.guest_ms === undefined || t === undefined) return "-";
  const legs = GUEST_LEGS.map(([a, z]) => (t[a] === undefined || t[z] === undefined ? "?" : ((t[z] - t[a]) / 1000).toFixed(2)));
  return `${b.guest_ms.toFixed(2)} = ${legs.join(" + ")}`;
}

function spread(xs: number[], digits = 0): string {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? "-" : `${s[0].toFixed(digits)}–${s[s.length - 1].toFixed(digits)}`;
}

function table(rows: Row[], lo: { mib_s: number; rtt_us: number }, rt: { p50_us: number; p99_us: number }, native: Record<number, { dropped: number; installed: number }>, window: { from: string; to: string }, touch: FirstTouch): string {
  const nat = Object.entries(native).map(([c, n]) => `${c} connection(s) ${n.dropped} MiB/s dropped, ${n.installed} MiB/s pwritten into a memfd`).join("; ");
  const rep = touch.page_reporting === null ? "no free page reporting" : `free page reporting on (order ${touch.page_reporting.order})`;
  const lines = [
    `${window.from} … ${window.to}. Loopback TCP (Node ↔ Node): ${lo.mib_s} MiB/s, round trip p50 ${lo.rtt_us} µs; through the data plane's threads: ${nat}; local userfaultfd round trip through Node: p50 ${rt.p50_us} µs, p99 ${rt.p99_us} µs; first touch of fresh memory ${touch.ns_per_page} ns per page (${touch.mib} MiB; ${rep})`,
    "",
    "| workload | mode | guest | data plane | conns | fault lane | memory populated ahead, ms per run | verified | total ms, runs (median; sim) | downtime ms, runs (sim) | rounds / throttle | background MiB/s, runs (sim) | background / native loopback | fault p50 / p99 / max µs (median run; sim p50) | wire / non-zero | source peak MiB | agents' span: pause / engine / to link / delivery / resume (of it, to the vCPUs' start) ms, each run | the guest's downtime = PAUSE reply + engine and to link + the frame's trip + destination loop to engine + RESUME read + first vCPU step, ms, each run | agents' span ms, runs | destination bulk CPU ns per non-zero page, each run |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const s = r.sim as { downtime_ms: number; total_ms: number; fault_latency_us: { p50: number }; background_mib_s: number };
    const w = r.workload.replace(/^.*\//, "").replace(/\.json$/, "");
    const f = r.real.fault_latency_us;
    lines.push(
      `| ${w} | ${r.mode} | ${r.mem} | ${r.dataplane} | ${r.connections} | ${r.fault_lane} | ${r.prealloc ? r.runs.map((x) => x.prealloc_ms ?? "?").join(", ") : "no"} | ${r.verified_runs} | ${spread(r.runs.map((x) => x.total_ms))} (${Math.round(r.real.total_ms)}; ${Math.round(s.total_ms)}) | ${spread(r.runs.map((x) => x.downtime_ms), 1)} (${s.downtime_ms.toFixed(2)}) | ${spread(r.runs.map((x) => x.rounds))} / ${spread(r.runs.map((x) => x.throttle * 100))} % | ${spread(r.runs.map((x) => x.background_mib_s))} (${Math.round(s.background_mib_s)}) | ${spread(r.runs.map((x) => x.background_over_native_loopback), 2)} | ${Math.round(f.p50)} / ${Math.round(f.p99)} / ${Math.round(f.max)}; ${Math.round(s.fault_latency_us.p50)} | ${r.wire_over_nonzero} | ${spread(r.runs.map((x) => x.source_peak_mib ?? NaN))} | ${r.runs.map((x) => breakdown(x.switchover)).join("; ")} | ${r.runs.map((x) => guestLegs(x.switchover)).join("; ")} | ${spread(r.runs.map((x) => x.switchover?.agents_ms ?? NaN), 1)} | ${r.runs.map((x) => x.receiver_cpu_ns_per_nonzero_page ?? "-").join(", ")} |`,
    );
  }
  return lines.join("\n");
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
