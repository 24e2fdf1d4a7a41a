/**
 * What one mark of the per-thread CPU account (src/real/thread-cpu.ts) costs
 * the loop that takes it: `--marks N` marks of this process's threads after
 * the first (which opens the files), µs each, p50 / p90 / max.
 *
 *   npm run build && node dist/bench/cpu-mark-cost.js [--marks 200]
 */
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { ThreadCpuAccount } from "../src/real/thread-cpu.js";

const { values } = parseArgs({ options: { marks: { type: "string" } } });
const n = Number(values.marks ?? 200);
if (!Number.isInteger(n) || n < 1) throw new Error("--marks takes a positive count");
const a = new ThreadCpuAccount([{ process: "this", pid: process.pid, guest: false }]);
a.mark("first");
const us: number[] = [];
for (let i = 0; i < n; i++) {
  const t = process.hrtime.bigint();
  a.mark(`m${i}`);
  us.push(Number(process.hrtime.bigint() - t) / 1000);
}
a.close();
us.sort((x, y) => x - y);
const at = (q: number): number => Math.round(us[Math.min(us.length - 1, Math.floor(q * us.length))]);
console.log(JSON.stringify({ at: new Date().toISOString(), loadavg: readFileSync("/proc/loadavg", "utf8").trim(), threads: a.result().threads.length, marks: n, p50_us: at(0.5), p90_us: at(0.9), max_us: at(1) }));
