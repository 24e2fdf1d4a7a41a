/**
 * Where a real migration's CPU goes: every thread of this process tree (the
 * source agent, the demo destination agent, both guests) and its CPU time
 * (/proc/PID/task/TID/schedstat, ns) over the window in which pages stream
 * (from the first snapshot in the migrating phase to the first completed
 * one), as a share of one core. This is the measurement behind the host
 * profile's CPU keys (src/sim/host-cpu.ts, docs/host-profile.md).
 *
 *   npm run build && flock /work/briefs/bench.lock -c 'node dist/bench/sim-vs-real-threads.js \
 *     [--workload examples/web-server.json] [--memory 256MiB] [--mode postcopy]'
 *
 * The snapshot is polled every 5 ms; /proc is read only at the window's two
 * ends, so the measuring does not take the cores it measures.
 */
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import type { Mode } from "../src/engine/messages.js";
import { scaleWorkload } from "../src/real/plan.js";
import { loadWorkload } from "../src/workload/parse.js";
import { parseByteSize } from "../src/workload/size.js";
import { withDemoMigration } from "./demo-run.js";

interface Thread {
  proc: string;
  comm: string;
  ns: number;
}

function read(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return "";
  }
}

/** This process and its descendants. */
function tree(root: number): number[] {
  const out = [root];
  for (let i = 0; i < out.length; i++)
    for (const t of readdirSync(`/proc/${out[i]}/task`)) {
      const c = read(`/proc/${out[i]}/task/${t}/children`).trim();
      if (c !== "") out.push(...c.split(/\s+/).map(Number));
    }
  return out;
}

function sample(): Map<string, Thread> {
  const m = new Map<string, Thread>();
  for (const p of tree(process.pid)) {
    const args = read(`/proc/${p}/cmdline`).split("\0");
    const proc = args.some((a) => a.includes("ppsim-guest")) ? `guest ${args.slice(1, 3).join(" ")}` : p === process.pid ? "source agent" : "destination agent";
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      const ns = Number(read(`/proc/${p}/task/${t}/schedstat`).split(" ")[0]);
      if (Number.isFinite(ns)) m.set(`${p}:${t}`, { proc: `${proc} (${p})`, comm: read(`/proc/${p}/task/${t}/comm`).trim(), ns });
    }
  }
  return m;
}

const { values: v } = benchArgs({ options: { workload: { type: "string" }, memory: { type: "string" }, mode: { type: "string" } } });
const file = v.workload ?? fileURLToPath(new URL("../../examples/web-server.json", import.meta.url));
const size = parseByteSize(v.memory ?? "256MiB");
if (typeof size === "string") throw new Error(`--memory ${size}`);
const workload = scaleWorkload(loadWorkload(file), size);
const mode = (v.mode ?? "postcopy") as Mode;
const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
let start: { at: number; m: Map<string, Thread> } | null = null;
let end: { at: number; m: Map<string, Thread> } | null = null;
const report = await withDemoMigration(bin, workload, mode, async (agent) => {
  const poll = setInterval(() => {
    const phase = agent.snapshot().phase;
    if (start === null && phase !== "setup") start = { at: performance.now(), m: sample() };
    if (start !== null && end === null && phase === "complete") end = { at: performance.now(), m: sample() };
  }, 5);
  try {
    return await agent.migrate();
  } finally {
    clearInterval(poll);
  }
});
console.log(JSON.stringify({ workload: report.workload, mode, total_ms: report.total_ms, background_mib_s: report.background_mib_s, demand_faults: report.demand_faults, fault_p50_us: report.fault_latency_us.p50 }));
if (start === null || end === null) {
  console.log("no streaming window seen (the migration ended between two polls)");
} else {
  const a: { at: number; m: Map<string, Thread> } = start;
  const b: { at: number; m: Map<string, Thread> } = end;
  const wallNs = (b.at - a.at) * 1e6;
  const rows = [...b.m].map(([k, t]) => ({ ...t, share: (t.ns - (a.m.get(k)?.ns ?? 0)) / wallNs })).filter((t) => t.share > 0.002);
  const total = rows.reduce((s, r) => s + r.share, 0);
  console.log(`window ${(wallNs / 1e6).toFixed(0)} ms; cores busy (this tree) ${total.toFixed(2)}`);
  const byProc = new Map<string, number>();
  for (const r of rows) byProc.set(r.proc, (byProc.get(r.proc) ?? 0) + r.share);
  console.log("| process | cores |\n| --- | --- |\n" + [...byProc].sort((x, y) => y[1] - x[1]).map(([p, s]) => `| ${p} | ${s.toFixed(3)} |`).join("\n"));
  console.log("\n| thread | cores |\n| --- | --- |\n" + rows.sort((x, y) => y.share - x.share).slice(0, 12).map((r) => `| ${r.proc} ${r.comm} | ${r.share.toFixed(3)} |`).join("\n"));
}
