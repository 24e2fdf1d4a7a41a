/**
 * Issue 9, "never corrupt": real migrations one after another, each checked
 * against the unmigrated run's hash, and everything kept for any run that
 * does not verify.
 *
 *   npm run build && flock /work/briefs/bench.lock node dist/bench/real-stress.js --out DIR
 *     [--modes postcopy,hybrid] [--sizes 4GiB,1GiB] [--lanes off,on] [--connections 1,2,3] [--hog 0,1]
 *     [--workload FILE] [--max-seconds 240] [--runs N] [--no-trace] [--check-tools]
 *
 * The cases are the cross product of the lists; DIR keeps `results.jsonl`
 * (one line per run), and each run is of the case with the fewest runs there
 * that fits in what is left of `--max-seconds` (estimated from the last runs
 * of its size), so that a series of short invocations (each one lock hold,
 * so that others' benchmarks interleave) fills each hold and covers the
 * matrix evenly. An invocation stops when no case fits, or after `--runs`. `--hog N` runs N busy processes
 * beside the migration (a CPU hog stretching every timing).
 *
 * Each run: a `--once` destination child and the source agent here (seed 1),
 * both with PPSIM_FAULT_TRACE=RUN/trace, PPSIM_DATAPLANE_STATS=1 and
 * PPSIM_DEST_DUMP=RUN (the destination writes its guest's RAM after the last
 * step: memory-dump.ts; once a run of that size gave the unmigrated hash,
 * PPSIM_DEST_DUMP_UNLESS=HASH spares a verified run the gigabytes),
 * PPSIM_FAULT_LANE as the case says. A run that
 * verified leaves only its line. One that did not keeps RUN/: both agents'
 * logs, the report, the traces, the destination's RAM, and diff.json — the
 * pages where it differs from an unmigrated run of the same workload, seed
 * and steps made here afterwards, each with what the fault trace knows of it.
 * `--check-tools` keeps and diffs every run (a verified one must show 0
 * differing pages: the check of the dump and the diff themselves).
 * Prints a markdown summary of all runs in DIR at the end.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import { MODES, type Mode } from "../src/engine/messages.js";
import type { Report } from "../src/engine/report.js";
import { spawnDemoDestination } from "../src/real/demo.js";
import { diffPages } from "../src/real/memory-dump.js";
import { scaleWorkload } from "../src/real/plan.js";
import { withUnmigrated } from "../src/real/reference-run.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { loadWorkload } from "../src/workload/parse.js";
import type { Workload } from "../src/workload/types.js";
import { formatBytes, parseByteSize } from "../src/workload/size.js";

const SEED = 1;

interface Case {
  mode: Mode;
  memBytes: number;
  lane: "on" | "off";
  connections: number;
  hog: number;
}

interface Result {
  run: number;
  case: string;
  start: string;
  end: string;
  load1: number;
  outcome: string;
  verified: boolean | null;
  reason: string;
  total_ms: number;
  downtime_ms: number;
  demand_faults: number;
  recoveries: number;
  pause_ms: number | null;
  delivery_ms: number | null;
  wall_s: number;
  kept: string | null;
  differing_pages?: number;
}

const caseName = (c: Case): string => `${c.mode} ${formatBytes(c.memBytes)} lane ${c.lane} conns ${c.connections} hog ${c.hog}`;

function list(text: string | undefined, dflt: string): string[] {
  return (text ?? dflt).split(",").filter((x) => x !== "");
}

function readResults(path: string): Result[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Result);
}

/** The unmigrated run's RAM hash by memory size (workload, seed and steps are the series'), kept in DIR/hashes.json. */
function knownHash(out: string, memBytes: number): string | null {
  const p = join(out, "hashes.json");
  if (!existsSync(p)) return null;
  return (JSON.parse(readFileSync(p, "utf8")) as Record<string, string>)[String(memBytes)] ?? null;
}

function rememberHash(out: string, memBytes: number, hash: string): void {
  const p = join(out, "hashes.json");
  const all = existsSync(p) ? (JSON.parse(readFileSync(p, "utf8")) as Record<string, string>) : {};
  if (all[String(memBytes)] !== undefined && all[String(memBytes)] !== hash) throw new Error(`the unmigrated run's hash at ${memBytes} bytes changed: ${all[String(memBytes)]} then ${hash} (not deterministic?)`);
  all[String(memBytes)] = hash;
  writeFileSync(p, JSON.stringify(all));
}

/** N busy processes (a CPU hog); returns a stop function that ends exactly those. */
function startHog(n: number): () => void {
  const kids: ChildProcess[] = [];
  for (let i = 0; i < n; i++) kids.push(spawn(process.execPath, ["-e", "for(;;){}"], { stdio: "ignore" }));
  return () => {
    for (const k of kids) if (k.exitCode === null) k.kill("SIGKILL");
  };
}

/** The unmigrated run's RAM compared with the destination's dump, page by page; annotated from the fault traces. */
async function diagnose(workload: Workload, steps: number, runDir: string, expectedHash: string | null): Promise<{ count: number }> {
  const dump = readdirSync(runDir).find((f) => f.startsWith("dest-") && f.endsWith(".mem"));
  if (dump === undefined) {
    writeFileSync(join(runDir, "diff.json"), JSON.stringify({ error: "the destination left no dump (it did not reach its last step?)" }));
    return { count: -1 };
  }
  return withUnmigrated(workload, SEED, steps, async (g) => {
    const hash = await g.hash();
    const d = diffPages(g.memfd, join(runDir, dump), g.layout.memBytes, g.layout.pageSize);
    // What the traces say of each differing page: its faults at the destination, its requests at the source.
    const traceDir = join(runDir, "trace");
    const faults: Record<number, unknown[]> = {};
    if (existsSync(traceDir)) {
      const want = new Set(d.pages.map((p) => p.page));
      for (const f of readdirSync(traceDir)) {
        const t = JSON.parse(readFileSync(join(traceDir, f), "utf8")) as { role: string; faults: { page: number }[] };
        for (const x of t.faults) if (want.has(x.page)) (faults[x.page] ??= []).push({ role: t.role, ...x });
      }
    }
    writeFileSync(join(runDir, "diff.json"), JSON.stringify({ referenceHash: hash, expectedHash, differingPages: d.count, pages: d.pages.map((p) => ({ ...p, trace: faults[p.page] ?? [] })) }, null, 1));
    return { count: d.count };
  });
}

async function runOnce(c: Case, n: number, file: string, out: string, trace: boolean, keepAll: boolean): Promise<Result> {
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
  const runDir = resolve(join(out, `run-${String(n).padStart(4, "0")}`));
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(join(runDir, "trace"), { recursive: true });
  // Both ends (the destination child inherits them).
  process.env.PPSIM_FAULT_LANE = c.lane === "off" ? "0" : "1";
  process.env.PPSIM_DEST_DUMP = runDir;
  // Once a run of this size verified, its hash is known: the destination dumps only a guest that ends otherwise.
  const known = knownHash(out, c.memBytes);
  if (known !== null && !keepAll) process.env.PPSIM_DEST_DUMP_UNLESS = known;
  else delete process.env.PPSIM_DEST_DUMP_UNLESS;
  process.env.PPSIM_DATAPLANE_STATS = "1";
  if (trace) process.env.PPSIM_FAULT_TRACE = join(runDir, "trace");
  else delete process.env.PPSIM_FAULT_TRACE;
  const workload = scaleWorkload(loadWorkload(file), c.memBytes);
  const destLog: string[] = [];
  const srcLog: string[] = [];
  const stamp = (l: string): string => `${new Date().toISOString()} ${l}`;
  const start = new Date();
  const load1 = loadavg()[0];
  const stopHog = startHog(c.hog);
  let report: Report | null = null;
  let steps = 0;
  let breakdown: SourceAgent["switchoverBreakdown"] = null;
  let error: string | null = null;
  try {
    const dest = await spawnDemoDestination(bin, (l) => destLog.push(stamp(l)));
    let agent: SourceAgent | null = null;
    let watch: NodeJS.Timeout | undefined;
    try {
      const a = await SourceAgent.start({ workload, mode: c.mode, seed: SEED, peer: { host: "127.0.0.1", port: dest.port }, connections: c.connections, log: (l) => srcLog.push(stamp(l)) });
      agent = a;
      steps = a.steps;
      // The hog stretches the migration, not the guest's remaining steps and the reference run after it (vCPUs at nice 19 starve beside it).
      watch = setInterval(() => {
        if (!["setup", "precopy", "switchover", "postcopy", "recovering"].includes(a.snapshot().phase)) stopHog();
      }, 100);
      report = await a.migrate();
      breakdown = a.switchoverBreakdown;
    } finally {
      clearInterval(watch);
      await agent?.close();
      await dest.finish(120_000);
    }
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  } finally {
    stopHog();
  }
  const end = new Date();
  const verified = report?.verified ?? null;
  const ok = report !== null && report.outcome === "completed" && verified === true;
  const r: Result = {
    run: n,
    case: caseName(c),
    start: start.toISOString(),
    end: end.toISOString(),
    load1: Math.round(load1 * 100) / 100,
    outcome: report?.outcome ?? "error",
    verified,
    reason: error ?? report?.reason ?? "",
    total_ms: Math.round(report?.total_ms ?? 0),
    downtime_ms: Math.round((report?.downtime_ms ?? 0) * 100) / 100,
    demand_faults: report?.demand_faults ?? 0,
    recoveries: report?.recoveries ?? 0,
    pause_ms: breakdown?.pause_ms ?? null,
    delivery_ms: breakdown?.delivery_ms ?? null,
    wall_s: Math.round((end.getTime() - start.getTime()) / 100) / 10,
    kept: ok && !keepAll ? null : runDir,
  };
  if (report?.hash?.unmigrated != null) rememberHash(out, c.memBytes, report.hash.unmigrated);
  if (ok && !keepAll) {
    rmSync(runDir, { recursive: true, force: true });
    return r;
  }
  writeFileSync(join(runDir, "report.json"), JSON.stringify({ case: c, steps, seed: SEED, workload: file, error, report }, null, 1));
  writeFileSync(join(runDir, "source.log"), srcLog.join("\n") + "\n");
  writeFileSync(join(runDir, "dest.log"), destLog.join("\n") + "\n");
  if (report?.outcome === "completed" && steps > 0) {
    const expected = /unmigrated run's ([0-9a-f]+)/.exec(report.reason)?.[1] ?? null;
    r.differing_pages = (await diagnose(workload, steps, runDir, expected)).count;
  }
  return r;
}

function summary(results: Result[]): string {
  const by = new Map<string, Result[]>();
  for (const r of results) by.set(r.case, [...(by.get(r.case) ?? []), r]);
  const lines = ["| case | runs | verified | not verified | not completed | total ms (min–max) | downtime ms (min–max) | load (min–max) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"];
  const span = (xs: number[]): string => (xs.length === 0 ? "–" : `${Math.min(...xs)}–${Math.max(...xs)}`);
  for (const [k, rs] of [...by.entries()].sort()) {
    const done = rs.filter((r) => r.outcome === "completed");
    lines.push(`| ${k} | ${rs.length} | ${done.filter((r) => r.verified === true).length} | ${done.filter((r) => r.verified !== true).length} | ${rs.length - done.length} | ${span(done.map((r) => r.total_ms))} | ${span(done.map((r) => r.downtime_ms))} | ${span(rs.map((r) => r.load1))} |`);
  }
  const first = results[0]?.start ?? "–";
  const last = results.at(-1)?.end ?? "–";
  lines.push("", `${results.length} runs, ${first} – ${last}; not verified: ${results.filter((r) => r.outcome === "completed" && r.verified !== true).map((r) => `run ${r.run} (${r.case}: ${r.reason})`).join("; ") || "none"}`);
  return lines.join("\n");
}

async function main(): Promise<void> {
  const { values } = benchArgs({
    options: {
      out: { type: "string" }, modes: { type: "string" }, sizes: { type: "string" }, lanes: { type: "string" }, connections: { type: "string" },
      hog: { type: "string" }, workload: { type: "string" }, "max-seconds": { type: "string" }, runs: { type: "string" }, "no-trace": { type: "boolean" },
      "check-tools": { type: "boolean" },
    },
  });
  if (values.out === undefined) throw new Error("--out DIR is required (results.jsonl and the kept runs go there)");
  const out = values.out;
  mkdirSync(out, { recursive: true });
  const modes = list(values.modes, "postcopy,hybrid") as Mode[];
  for (const m of modes) if (!MODES.includes(m) || m === "precopy") throw new Error("--modes takes postcopy and hybrid");
  const sizes = list(values.sizes, "4GiB,1GiB").map((s) => {
    const b = parseByteSize(s);
    if (typeof b === "string") throw new Error(`--sizes: ${s} ${b}`);
    return b;
  });
  const lanes = list(values.lanes, "off,on") as ("on" | "off")[];
  for (const l of lanes) if (l !== "on" && l !== "off") throw new Error("--lanes takes on and off");
  const conns = list(values.connections, "1,2,3").map(Number);
  for (const k of conns) if (!Number.isInteger(k) || k < 1 || k > 8) throw new Error("--connections takes 1 … 8");
  const hogs = list(values.hog, "0").map(Number);
  for (const h of hogs) if (!Number.isInteger(h) || h < 0 || h > 4) throw new Error("--hog takes 0 … 4");
  const file = values.workload ?? "bench/workloads/rewrite-512m.json";
  const maxS = Number(values["max-seconds"] ?? 240);
  const maxRuns = values.runs === undefined ? Infinity : Number(values.runs);
  const cases: Case[] = [];
  for (const lane of lanes) for (const mode of modes) for (const connections of conns) for (const hog of hogs) for (const memBytes of sizes) cases.push({ mode, memBytes, lane, connections, hog });
  const resultsPath = join(out, "results.jsonl");
  const t0 = Date.now();
  let done = 0;
  for (;;) {
    const results = readResults(resultsPath);
    // The next run's length by size: the longest of the last three of that size in DIR, else a guess (4 GiB ≈ 100 s).
    const estimate = (c: Case): number => {
      const size = ` ${formatBytes(c.memBytes)} `;
      const recent = results.filter((r) => r.case.includes(size)).slice(-3).map((r) => r.wall_s);
      return recent.length > 0 ? Math.max(...recent) : 25 * Math.max(1, c.memBytes / 2 ** 30);
    };
    // The case with the fewest runs in DIR (the first in the list on a tie) among those that fit what is left of the hold.
    const left = maxS - (Date.now() - t0) / 1000;
    const runsOf = (c: Case): number => results.filter((r) => r.case === caseName(c)).length;
    const fit = cases.filter((c) => estimate(c) <= left);
    if (done >= maxRuns || fit.length === 0) break;
    const c = fit.reduce((a, b) => (runsOf(b) < runsOf(a) ? b : a));
    const r = await runOnce(c, results.length, file, out, values["no-trace"] !== true, values["check-tools"] === true);
    appendFileSync(resultsPath, JSON.stringify(r) + "\n");
    console.log(`${new Date().toISOString()} run ${r.run} ${r.case}: ${r.outcome}, verified ${String(r.verified)}, total ${r.total_ms} ms, downtime ${r.downtime_ms} ms, ${r.demand_faults} faults, load ${r.load1}, ${r.wall_s} s${r.kept !== null ? `, kept in ${r.kept}` : ""}${r.differing_pages !== undefined ? `, ${r.differing_pages} pages differ` : ""}`);
    done++;
  }
  console.log(summary(readResults(resultsPath)));
  console.log(`${new Date().toISOString()} done`);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
