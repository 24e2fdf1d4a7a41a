/**
 * Real post-copy on loopback, measured beside what bounds it, and beside the
 * simulator's figures for the same workload on a link modelled after the
 * measured loopback.
 *
 *   npm run build && node dist/bench/real-postcopy.js [--workload FILE] [--sizes 256MiB,1GiB,4GiB] [--runs N] [--mode postcopy|precopy|hybrid] [--json FILE]
 *
 * For each size: a destination agent as a child process (`ppsim real
 * --listen 127.0.0.1:0 --once`, its own event loop as on another host), the
 * source agent here, post-copy. Beside it, measured in the same run: loopback
 * TCP throughput and round trip between two Node processes, and the local
 * userfaultfd fault round trip through Node (a pool thread faults, the
 * FaultReader hands it to JS, JS answers with UFFDIO_COPY) — the floor under
 * a demand fault's latency. Prints a JSON report and a markdown table.
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
import type { Report } from "../src/engine/report.js";
import { faultRoundTrip } from "../src/real/calibrate.js";
import { loopback } from "./loopback.js";
import { createServer, connect as tcpConnect, type Socket } from "node:net";
import { maxPayloadBytes } from "../src/engine/frame-decoder.js";
import { plainSocketFd, stopNodeReading } from "../src/real/dataplane.js";
import { closeFd, constants, createBulkReceiver, memfdCreate, pwrite, setSendBuffer, startBulkSender } from "../src/real/native.js";
import { BULK_KERNEL_QUEUE_BYTES } from "../src/real/transport.js";
import { NATIVE_QUEUE_BYTES } from "../src/real/source-link.js";
import { scaleWorkload } from "../src/real/plan.js";
import { REAL_DEFAULTS } from "../src/real/source-agent.js";
import { withDemoMigration } from "./demo-run.js";
import { median } from "./table.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { formatBytes, parseByteSize } from "../src/workload/size.js";

const MiB = 1024 * 1024;

/**
 * Loopback TCP through the data plane's threads: a sender filling 16-page
 * frames from a memfd, a receiver dropping them (`install` false) or
 * pwriting them into another memfd. The bulk socket's SO_SNDBUF as the agents set it.
 */
async function loopbackNative(install: boolean, totalBytes = 512 * MiB): Promise<{ mib_s: number }> {
  const PS = constants().PAGE_SIZE;
  const pages = totalBytes / PS;
  const src = memfdCreate("bench-dp-src", totalBytes);
  const chunk = Buffer.alloc(64 * 1024);
  for (let o = 0; o < totalBytes; o += chunk.length) {
    chunk.writeUInt32LE(o, 0);
    chunk.writeUInt32LE(o + 4096, 4096);
    pwrite(src, o, chunk.fill(o & 0xff, 8));
  }
  const dst = install ? memfdCreate("bench-dp-dst", totalBytes) : -1;
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => server.once("connection", r));
  const client = tcpConnect({ host: "127.0.0.1", port });
  await new Promise((r) => client.once("connect", r));
  const peer = await accepted;
  setSendBuffer(plainSocketFd(client), BULK_KERNEL_QUEUE_BYTES / 2);
  if (!stopNodeReading(peer)) throw new Error("bench: Node already read from the receiving socket");
  const limits = new Uint32Array(12);
  for (let t = 1; t < 12; t++) limits[t] = maxPayloadBytes(t, { pageSize: PS, pageCount: pages });
  let done: () => void = () => undefined;
  const finished = new Promise<void>((r) => (done = r));
  let received = 0;
  const receiver = createBulkReceiver(plainSocketFd(peer), limits, 30_000, (ns) => {
    for (const n of ns) if (n.kind === "pages" && (received += n.pages.length) >= pages) done();
  });
  if (install) receiver.setTarget(dst, dst, 0n, PS, pages); // before "running": pwrite only, the uffd is never used
  else receiver.discardPages(PS, pages);
  receiver.start(new Uint8Array(0));
  let room: () => void = () => undefined;
  const sender = startBulkSender(plainSocketFd(client), src, PS, pages, NATIVE_QUEUE_BYTES / 2, (e) => {
    if (e.kind === "room") room();
  });
  const zero = new Uint8Array(16);
  const t0 = performance.now();
  for (let p = 0; p < pages; p += 16) {
    while (sender.queued >= NATIVE_QUEUE_BYTES) await new Promise<void>((r) => (room = r));
    sender.pages(Uint32Array.from({ length: 16 }, (_, i) => p + i), zero);
  }
  await finished;
  const secs = (performance.now() - t0) / 1000;
  sender.stop();
  receiver.stop();
  client.destroy();
  peer.destroy();
  server.close();
  closeFd(src);
  if (dst >= 0) closeFd(dst);
  return { mib_s: Math.round(totalBytes / MiB / secs) };
}

interface Run {
  report: Report;
  /** Source memfd bytes at their peak, and pages punched before completion. */
  source_peak_mib: number | null;
  punched_pages: number | null;
  /** The source memfd over the migration: [ms since the engine started, MiB] at each destination progress report. */
  source_mib_over_time: [number, number][];
  /** Where the downtime went (SourceAgent.switchoverBreakdown). */
  switchover: { pause_ms: number; engine_ms: number; to_link_ms: number; delivery_ms: number; resume_ms: number } | null;
}

async function migrateOnce(file: string, memBytes: number, bin: string, mode: Mode, dataplane: string): Promise<Run> {
  // Both ends: the destination child inherits it.
  process.env.PPSIM_DATAPLANE = dataplane;
  const workload = scaleWorkload(loadWorkload(file), memBytes);
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
  );
}


async function main(): Promise<void> {
  const { values } = parseArgs({ options: { workload: { type: "string" }, sizes: { type: "string" }, runs: { type: "string" }, mode: { type: "string" }, json: { type: "string" }, dataplane: { type: "string" } } });
  const planes = (values.dataplane ?? "native").split(",");
  for (const d of planes) if (d !== "native" && d !== "js") throw new Error("--dataplane takes native, js or both (native,js)");
  const mode = (values.mode ?? "postcopy") as Mode;
  if (!MODES.includes(mode)) throw new Error(`--mode must be one of ${MODES.join(", ")}`);
  const file = values.workload ?? "examples/web-server.json";
  const sizes = (values.sizes ?? "256MiB,1GiB,4GiB").split(",").map((s) => {
    const b = parseByteSize(s);
    if (typeof b === "string") throw new Error(`--sizes: ${s} ${b}`);
    return b;
  });
  const runs = Number(values.runs ?? 3);
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));

  const host = { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? "?", kernel: release() };
  const lo = await loopback({ pings: 2000, bytes: 1024 * MiB });
  const loNative = await loopbackNative(false);
  const loInstall = await loopbackNative(true);
  const rt = await faultRoundTrip(4096);
  const rows = [];
  for (const mem of sizes) for (const plane of planes) {
    const all: Run[] = [];
    // Alternating would need both planes inside the loop; runs of one plane go back to back.
    for (let i = 0; i < runs; i++) all.push(await migrateOnce(file, mem, bin, mode, plane));
    const reports = all.map((r) => r.report);
    const ok = reports.filter((r) => r.outcome === "completed" && r.verified === true);
    // The run with the median total time stands for the size; every run's figures are kept.
    const pick = ok.length > 0 ? ok.sort((a, b) => a.total_ms - b.total_ms)[Math.floor((ok.length - 1) / 2)] : reports[0];
    const nonZeroBytes = (pick.pages_sent - pick.pages_zero) * pick.page_size;
    const w = scaleWorkload(loadWorkload(file), mem);
    const sim = simulate({
      workload: w,
      options: { ...REAL_DEFAULTS, mode },
      link: { bandwidthBytesPerSec: lo.mib_s * MiB, latencyUs: lo.rtt_us / 2 },
      seed: 1,
    });
    rows.push({
      mem: formatBytes(mem),
      dataplane: plane,
      runs: all.map(({ report: r, source_peak_mib, punched_pages, source_mib_over_time, switchover }) => ({
        outcome: r.outcome, verified: r.verified, downtime_ms: r.downtime_ms, total_ms: r.total_ms, background_mib_s: r.background_mib_s,
        fault_p50_us: r.fault_latency_us.p50, fault_p99_us: r.fault_latency_us.p99, fault_max_us: r.fault_latency_us.max, source_peak_mib, punched_pages, source_mib_over_time, switchover,
        background_over_loopback: Math.round((r.background_mib_s / lo.mib_s) * 100) / 100,
        background_over_native_loopback: Math.round((r.background_mib_s / loNative.mib_s) * 100) / 100,
      })),
      verified_runs: `${ok.length}/${reports.length}`,
      downtime_ms_median: median(reports.map((r) => r.downtime_ms)),
      real: pick,
      wire_over_nonzero: Math.round((pick.bytes_sent / nonZeroBytes) * 10000) / 10000,
      sim: { downtime_ms: sim.downtime_ms, total_ms: sim.total_ms, demand_faults: sim.demand_faults, fault_latency_us: sim.fault_latency_us, background_mib_s: sim.background_mib_s, bytes_sent: sim.bytes_sent, verified: sim.verified },
    });
    console.error(`${formatBytes(mem)} (${plane}): ${ok.length}/${reports.length} verified, downtime ${pick.downtime_ms} ms, total ${pick.total_ms} ms`);
  }
  delete process.env.PPSIM_DATAPLANE;
  const result = { workload: file, mode, host, loopback: lo, loopback_native: loNative, loopback_native_installing: loInstall, uffd_round_trip_us: rt, options: REAL_DEFAULTS, rows };
  const json = JSON.stringify(result, null, 2);
  if (values.json !== undefined) writeFileSync(values.json, json + "\n");
  console.log(json);
  console.log(table(result.rows, lo, rt, loNative.mib_s, loInstall.mib_s));
}

type Breakdown = { pause_ms: number; engine_ms: number; to_link_ms: number; delivery_ms: number; resume_ms: number } | null;
type Row = { mem: string; dataplane: string; runs: { total_ms: number; background_mib_s: number; source_peak_mib: number | null; switchover: Breakdown }[]; real: Report; sim: Record<string, unknown>; wire_over_nonzero: number; verified_runs: string; downtime_ms_median: number };

function breakdown(b: Breakdown): string {
  return b === null ? "-" : [b.pause_ms, b.engine_ms, b.to_link_ms, b.delivery_ms, b.resume_ms].map((x) => x.toFixed(1)).join(" / ");
}

function spread(xs: number[]): string {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? "-" : `${Math.round(s[0])}–${Math.round(s[s.length - 1])}`;
}

function table(rows: Row[], lo: { mib_s: number; rtt_us: number }, rt: { p50_us: number; p99_us: number }, native: number, installing: number): string {
  const lines = [
    `loopback TCP (Node ↔ Node): ${lo.mib_s} MiB/s, round trip p50 ${lo.rtt_us} µs; through the data plane's threads: ${native} MiB/s (pages dropped), ${installing} MiB/s (pwritten into a memfd); local userfaultfd round trip through Node: p50 ${rt.p50_us} µs, p99 ${rt.p99_us} µs`,
    "",
    "| guest | data plane | verified | downtime ms (median; sim) | total ms (real; sim) | total ms, all runs | wire / non-zero bytes | demand faults (real; sim) | fault latency p50 / p99 µs (real; sim) | background MiB/s (real; sim) | background, all runs | source peak MiB, all runs | downtime: pause / engine / to link / delivery / resume ms, each run |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const r of rows) {
    const s = r.sim as { downtime_ms: number; total_ms: number; demand_faults: number; fault_latency_us: { p50: number; p99: number }; background_mib_s: number };
    lines.push(
      `| ${r.mem} | ${r.dataplane} | ${r.verified_runs} | ${r.downtime_ms_median}; ${s.downtime_ms} | ${r.real.total_ms}; ${s.total_ms} | ${spread(r.runs.map((x) => x.total_ms))} | ${r.wire_over_nonzero} | ${r.real.demand_faults}; ${s.demand_faults} | ${r.real.fault_latency_us.p50} / ${r.real.fault_latency_us.p99}; ${s.fault_latency_us.p50} / ${s.fault_latency_us.p99} | ${r.real.background_mib_s}; ${s.background_mib_s} | ${spread(r.runs.map((x) => x.background_mib_s))} | ${spread(r.runs.map((x) => x.source_peak_mib ?? NaN))} | ${r.runs.map((x) => breakdown(x.switchover)).join("; ")} |`,
    );
  }
  return lines.join("\n");
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
