/**
 * The standby copy measured (issue 16, docs/standby.md): real post-copy on
 * loopback with `--standby DIR`, for each example workload.
 *
 *   cost:  `--runs` pairs of migrations without and with the copy (source
 *          agent here, destination agent a child process): total time, fault
 *          latency, and the unprotected window.
 *   kills: `--kills` migrations whose source agent (a child process, the
 *          CLI) is killed with SIGKILL at a random moment after switchover
 *          (uniform over the post-copy time of the cost runs); the
 *          destination (here) fills from the copy. Verified completions
 *          (the destination's hash against an unmigrated run's), and for the
 *          rest the pages it names lost; each kill classed as after the
 *          window (the source's `protected` file, or every page's record
 *          written) or inside it.
 *
 * Beside it, measured in the same run: the write speed of DIR (1 GiB in
 * 1 MiB writes, page cache; 256 MiB with fdatasync per MiB) and loopback TCP.
 *
 * `--mode hybrid` measures hybrid instead of post-copy (most of the copy is
 * then written during pre-copy); `--sync` adds `--standby-sync` (every write
 * made durable before it counts). The copy's speed is the pages it still
 * needed at switchover over the window, when the copy closed it.
 * `--downtime-limit-ms N` sets pre-copy's downtime limit (hybrid: a small
 * one keeps the rounds from converging, so that post-copy follows them).
 * `--copy-nice N` sets the copy thread's nice value in the cost runs (default
 * 10; `--kills 0` to measure only the cost).
 *
 *   node dist/bench/real-standby.js [--workloads a.json,b.json] [--memory 1GiB] [--runs 3] [--kills 10] [--dir DIR] [--seed N] [--mode postcopy|hybrid] [--sync] [--downtime-limit-ms N] [--copy-nice N]
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeSync, fdatasyncSync, closeSync, ftruncateSync } from "node:fs";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import type { Report } from "../src/engine/report.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { spawnDemoDestination } from "../src/real/demo.js";
import { GuestProcess } from "../src/real/guest-process.js";
import { startingVcpus } from "../src/real/guest-spawn.js";
import { chooseSteps, scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { RECORD_BYTES } from "../src/real/standby-store.js";
import { toGuestConfig } from "../src/workload/guest-config.js";
import { loadWorkload } from "../src/workload/parse.js";
import { parseByteSize } from "../src/workload/size.js";
import type { Workload } from "../src/workload/types.js";
import { median, printBench, type Row } from "./table.js";

const MiB = 2 ** 20;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** DIR's write speed, MiB/s: page cache, and with fdatasync after every MiB. */
function diskSpeed(dir: string): { cached_mib_s: number; synced_mib_s: number } {
  const f = join(dir, "speed.tmp");
  const fd = openSync(f, "w+");
  const b = Buffer.alloc(MiB, 7);
  try {
    ftruncateSync(fd, 1024 * MiB);
    let t = performance.now();
    for (let i = 0; i < 1024; i++) writeSync(fd, b, 0, MiB, i * MiB);
    const cached = 1024 / ((performance.now() - t) / 1000);
    t = performance.now();
    for (let i = 0; i < 256; i++) {
      writeSync(fd, b, 0, MiB, i * MiB);
      fdatasyncSync(fd);
    }
    const synced = 256 / ((performance.now() - t) / 1000);
    return { cached_mib_s: Math.round(cached), synced_mib_s: Math.round(synced) };
  } finally {
    closeSync(fd);
    rmSync(f, { force: true });
  }
}

/** Loopback TCP, this process to itself: 1 GiB in 64 KiB writes. */
async function loopbackMiBs(): Promise<number> {
  let got = 0;
  const total = 1024 * MiB;
  const done = new Promise<void>((resolve) => {
    const server = createServer((c) =>
      c.on("data", (d: Buffer) => {
        got += d.length;
        if (got >= total) {
          c.destroy();
          server.close();
          resolve();
        }
      }),
    );
    server.listen(0, "127.0.0.1", () => {
      const a = server.address();
      const s = connect(typeof a === "object" && a !== null ? a.port : 0, "127.0.0.1", async () => {
        const chunk = Buffer.alloc(64 * 1024, 1);
        for (let sent = 0; sent < total; sent += chunk.length) if (!s.write(chunk)) await new Promise((r) => s.once("drain", r));
        s.end();
      });
      s.on("error", () => undefined);
    });
  });
  const t = performance.now();
  await done;
  return Math.round(total / MiB / ((performance.now() - t) / 1000));
}

async function referenceHash(w: Workload, seed: number, steps: number): Promise<string> {
  const g = await GuestProcess.spawn({ role: "source", config: toGuestConfig(w, seed), steps, noWp: true });
  try {
    await startingVcpus(g, () => g.run());
    while (!(await g.progress()).vcpus.every((v) => v.finished)) await sleep(20);
    return await g.hash();
  } finally {
    await g.quit();
  }
}

/** One migration, source agent here, destination a child process; with or without a standby copy. */
interface Setup {
  mode: "postcopy" | "hybrid";
  sync: boolean;
  /** The copy thread's nice value in the cost runs (the kill runs' CLI source uses the default). */
  nice: number | undefined;
  /** Pre-copy's downtime limit, ms (hybrid: a small one keeps the rounds from converging, so post-copy follows). */
  downtimeLimitMs: number | undefined;
}

async function costRun(bin: string, w: Workload, seed: number, steps: number, standbyDir: string | null, o: Setup): Promise<Report> {
  const extra = standbyDir === null ? ["--insecure"] : ["--insecure", "--standby", standbyDir];
  const log: string[] = [];
  const dest = await spawnDemoDestination(bin, (l) => log.push(`dest: ${l}`), extra);
  // A run that hangs says where, with both agents' last lines.
  const watchdog = setTimeout(() => console.error(JSON.stringify({ slow: `${w.name} still running after 120 s`, standby: standbyDir !== null, log: log.slice(-30) })), 120_000);
  const agent = await SourceAgent.start({ workload: w, mode: o.mode, seed, steps, peer: { host: "127.0.0.1", port: dest.port }, log: (l) => log.push(`source: ${l}`), ...(o.downtimeLimitMs === undefined ? {} : { options: { downtimeLimitMs: o.downtimeLimitMs } }), standby: standbyDir === null ? undefined : { dir: standbyDir, sync: o.sync, nice: o.nice } });
  try {
    return await agent.migrate();
  } finally {
    clearTimeout(watchdog);
    await agent.close();
    await dest.finish(120_000);
  }
}

interface KillResult {
  atMs: number;
  afterWindow: boolean;
  written: number;
  outcome: string;
  verified: boolean;
  lost: number | null;
  /** The source ended (the migration completed) before the kill: no post-copy (hybrid that converged) or a shorter one. */
  endedFirst: boolean;
}

/** One migration whose source (the CLI, a child) is killed `delayMs` after the switchover mark appears. */
async function killRun(bin: string, file: string, w: Workload, seed: number, steps: number, dir: string, delayMs: number, expected: string, o: Setup): Promise<KillResult> {
  const log: string[] = [];
  const dest = await DestinationAgent.listen("127.0.0.1", 0, { once: true, standbyDir: dir, reconnectWaitMs: 2000, log: (l) => log.push(l) });
  const args = [bin, "real", "--peer", `127.0.0.1:${dest.port}`, "--trace", file, "--memory", String(w.memBytes), "--mode", o.mode, "--steps", String(steps), "--seed", String(seed)];
  const src = spawn(process.execPath, [...args, "--standby", dir, ...(o.sync ? ["--standby-sync"] : []), ...(o.downtimeLimitMs === undefined ? [] : ["--downtime-limit", `${o.downtimeLimitMs}ms`]), "--reconnect-wait", "2s", "--plain", "--insecure"], { stdio: "ignore" });
  const pages = w.memBytes / w.pageSize;
  const folder = () => readdirSync(dir).find((n) => /^[0-9a-f]{32}$/.test(n));
  try {
    const exited = new Promise<void>((r) => src.once("exit", () => r()));
    let marked = false;
    while (!marked && src.exitCode === null) {
      const f = folder();
      marked = f !== undefined && existsSync(join(dir, f, "mark"));
      if (!marked) await sleep(1);
    }
    const t0 = performance.now();
    if (marked) await Promise.race([sleep(delayMs), exited]);
    const f = folder();
    const recs = f === undefined ? null : readFileSync(join(dir, f, "records"));
    let written = 0;
    for (let p = 0; recs !== null && p < pages; p++) if (recs[p * RECORD_BYTES + 12] & 1) written++;
    // The source says when its copy, with the pages the destination holds, covers every page (the window closed).
    const protecting = f !== undefined && existsSync(join(dir, f, "protected"));
    const endedFirst = src.exitCode !== null;
    src.kill("SIGKILL");
    const atMs = performance.now() - t0;
    // A destination that never ends is a result too (said, with its log), not a hung bench.
    const end = await Promise.race([dest.done.then((e) => e[0]), sleep(120_000).then(() => null)]);
    if (end === null) console.error(JSON.stringify({ hung: true, delayMs, log: log.slice(-20) }));
    const hash = log.map((l) => /guest RAM hash ([0-9a-f]{16})/.exec(l)?.[1]).find((h) => h !== undefined) ?? null;
    const lost = /: (\d+) of \d+ pages are neither here nor/.exec(end?.reason ?? "");
    // Every record written means every page current only in post-copy, whose copy starts at the mark with final pages;
    // in hybrid most records were written during pre-copy and a page dirtied since is stale: only `protected` says.
    const allCurrent = o.mode === "postcopy" && written === pages;
    return { atMs, afterWindow: endedFirst || protecting || allCurrent, endedFirst, written, outcome: end === null ? "no end within 120 s" : (end?.outcome ?? "?"), verified: end?.outcome === "completed" && hash === expected, lost: lost === null ? null : Number(lost[1]) };
  } finally {
    src.kill("SIGKILL");
    await dest.close();
    for (const n of readdirSync(dir)) rmSync(join(dir, n), { recursive: true, force: true });
  }
}

const span = (xs: number[]) => (xs.length === 0 ? "–" : `${Math.min(...xs)}–${Math.max(...xs)}`);
/** Post-copy's length: from the switchover to the end. */
const postcopyMs = (r: Report) => Math.max(1, r.total_ms - (r.standby?.opened_at_ms ?? r.setup_ms) - r.downtime_ms);
/** Pages per second the copy wrote after switchover, as MiB/s of guest memory covered; null when the migration closed the window first. */
function copyMiBs(r: Report, pageSize: number): number | null {
  const s = r.standby;
  if (s?.closed_by !== "copy" || s.window_ms === null || s.window_ms <= 0 || s.needed_at_switchover === 0) return null;
  return Math.round((s.needed_at_switchover * pageSize) / MiB / (s.window_ms / 1000));
}
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;

async function main(): Promise<void> {
  const { values } = benchArgs({
    options: { workloads: { type: "string" }, memory: { type: "string" }, runs: { type: "string" }, kills: { type: "string" }, dir: { type: "string" }, seed: { type: "string" }, mode: { type: "string" }, sync: { type: "boolean" }, "copy-nice": { type: "string" }, "downtime-limit-ms": { type: "string" } },
  });
  const mode = values.mode ?? "postcopy";
  if (mode !== "postcopy" && mode !== "hybrid") throw new Error(`--mode must be postcopy or hybrid, got ${mode}`);
  const setup: Setup = { mode, sync: values.sync === true, nice: values["copy-nice"] === undefined ? undefined : Number(values["copy-nice"]), downtimeLimitMs: values["downtime-limit-ms"] === undefined ? undefined : Number(values["downtime-limit-ms"]) };
  if (setup.downtimeLimitMs !== undefined && !(setup.downtimeLimitMs > 0)) throw new Error(`--downtime-limit-ms must be a positive number of ms`);
  const files = (values.workloads ?? "examples/web-server.json,examples/database.json,examples/memory-scan.json,examples/idle.json").split(",");
  const mem = parseByteSize(values.memory ?? "1GiB");
  if (typeof mem === "string") throw new Error(`--memory ${mem}`);
  const runs = Number(values.runs ?? 3);
  const kills = Number(values.kills ?? 10);
  const seed = Number(values.seed ?? 1);
  const dir = values.dir ?? mkdtempSync(join(tmpdir(), "ppsim-standby-bench-"));
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
  // Kill moments: a fixed pseudo-random sequence (the command names its seed).
  let x = seed * 2654435761;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);

  const disk = diskSpeed(dir);
  const loopback = await loopbackMiBs();
  const rows: Row[] = [];
  for (const file of files) {
    const w = scaleWorkload(loadWorkload(file), mem);
    const steps = chooseSteps(w);
    const expected = await referenceHash(w, seed, steps);
    const plain: Report[] = [];
    const copied: Report[] = [];
    for (let i = 0; i < runs; i++) {
      plain.push(await costRun(bin, w, seed, steps, null, setup));
      copied.push(await costRun(bin, w, seed, steps, dir, setup));
    }
    // Post-copy's length in the runs with the copy: the span the kills fall in.
    const postMs = median(copied.map(postcopyMs));
    const results: KillResult[] = [];
    for (let i = 0; i < kills; i++) results.push(await killRun(bin, file, w, seed, steps, dir, rand() * postMs, expected, setup));
    const after = results.filter((k) => k.afterWindow);
    const inside = results.filter((k) => !k.afterWindow);
    const t = (r: Report[]) => r.map((x) => Math.round(x.total_ms));
    const p50 = (r: Report[]) => median(r.map((x) => x.fault_latency_us.p50));
    const rates = copied.map((r) => copyMiBs(r, w.pageSize)).filter((v): v is number => v !== null);
    rows.push({
      workload: w.name,
      mode,
      sync: setup.sync,
      copy_nice: setup.nice ?? "default",
      memory: `${mem / 2 ** 30} GiB`,
      verified_plain: `${plain.filter((r) => r.verified === true).length}/${runs}`,
      verified_standby: `${copied.filter((r) => r.verified === true).length}/${runs}`,
      total_ms_plain: span(t(plain)),
      total_ms_standby: span(t(copied)),
      fault_p50_us_plain: span(plain.map((r) => Math.round(r.fault_latency_us.p50))),
      fault_p50_us_standby: span(copied.map((r) => Math.round(r.fault_latency_us.p50))),
      fault_p99_us_plain: span(plain.map((r) => Math.round(r.fault_latency_us.p99))),
      fault_p99_us_standby: span(copied.map((r) => Math.round(r.fault_latency_us.p99))),
      window_ms: span(copied.map((r) => Math.round(r.standby?.window_ms ?? -1))),
      window_closed_by: [...new Set(copied.map((r) => r.standby?.closed_by ?? "never"))].join("/"),
      postcopy_ms_standby: span(copied.map((r) => Math.round(postcopyMs(r)))),
      window_over_postcopy: span(copied.map((r) => ratio(r.standby?.window_ms ?? NaN, postcopyMs(r)))),
      needed_at_switchover: span(copied.map((r) => r.standby?.needed_at_switchover ?? -1)),
      // Of those, the pages the destination said it held before the copy wrote them (its progress reports).
      held_by_destination: span(copied.map((r) => r.standby?.held_by_destination ?? -1)),
      // The source's pages freed as they left (punched once the destination reported them installed).
      source_punched_pages: span(copied.map((r) => r.real_source_memory?.punched_pages ?? -1)),
      copy_mib_s: span(rates),
      copy_over_dir_cached: span(rates.map((r) => ratio(r, disk.cached_mib_s))),
      total_ratio_median: ratio(median(t(copied)), median(t(plain))),
      fault_p50_ratio_median: ratio(p50(copied), p50(plain)),
      kills_after_window_verified: `${after.filter((k) => k.verified).length}/${after.length}`,
      kills_inside_window_verified: `${inside.filter((k) => k.verified).length}/${inside.length}`,
      inside_lost_pages: span(inside.filter((k) => k.lost !== null).map((k) => k.lost as number)),
      kills_after_migration_ended: results.filter((k) => k.endedFirst).length,
      kills_verified_total: `${results.filter((k) => k.verified).length}/${results.length}`,
    });
    console.error(JSON.stringify({ file, kills: results }));
  }
  if (values.dir === undefined) rmSync(dir, { recursive: true, force: true });
  printBench("real-standby", `node dist/bench/real-standby.js ${process.argv.slice(2).join(" ")}`.trim(), { dir, disk_write: disk, loopback_tcp_mib_s: loopback }, rows);
}

await main();
