/**
 * sim-scale's points measured for two builds side by side: for each point,
 * another build's `sim-scale.js --one` and this one's, in fresh processes,
 * alternating which goes first, `--runs` times — so that both see the same
 * (shared, noisy) machine. Reports CPU time before and after with the
 * median ratio, the reference loop's range (the machine's speed during the
 * point), memory, and whether both builds simulated the same run (events,
 * virtual time, pages, faults, accesses, rounds, outcome all equal) — and,
 * for builds that draw different random streams, whether each build's runs
 * were the same run every time, with each build's own figures beside.
 *
 *   npm run build && node dist/bench/sim-scale-pair.js --against /path/to/main/dist [--runs 3] [--max-virtual-min 40] SIZES_GIB VCPUS MODES
 *   e.g. node dist/bench/sim-scale-pair.js --against ../main/dist --runs 3 1,4,16,64,256 1,2,4,8,16,32,64 postcopy,precopy,hybrid
 *   1 TiB: node dist/bench/sim-scale-pair.js --against ../main/dist --runs 1 --max-virtual-min 40 1024 - postcopy,precopy,hybrid
 *   one build, two environments (huge pages under the typed arrays, docs/sim-scaling.md):
 *     node dist/bench/sim-scale-pair.js --against dist --env-after GLIBC_TUNABLES=glibc.malloc.hugetlb=1 --runs 3 64 - postcopy
 *   (--env-before / --env-after NAME=VALUE, repeatable: set for that side's processes only.)
 *
 * ("-" leaves out an axis.)
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { median, printBench, type Row } from "./table.js";

interface Point {
  wallS: number;
  cpuS: number;
  userS: number;
  sysS: number;
  hugeBytes: number;
  thpFaultsDuring: number;
  refMs: number;
  rssBaseline: number;
  peakRss: number;
  events: number;
  accesses: number;
  totalMs: number;
  outcome: string;
  verified: boolean;
  pagesSent: number;
  faults: number;
  rounds: number;
}

const args = process.argv.slice(2);
function flag(name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const [, value] = args.splice(i, 2);
  return value;
}
function envFlags(name: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (let v = flag(name); v !== undefined; v = flag(name)) {
    const eq = v.indexOf("=");
    if (eq <= 0) throw new Error(`${name} takes NAME=VALUE, got ${v}`);
    env[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return env;
}
const envBefore = envFlags("--env-before");
const envAfter = envFlags("--env-after");
const against = flag("--against");
const runs = Number(flag("--runs") ?? 3);
const maxMin = flag("--max-virtual-min");
if (against === undefined || !(runs >= 1)) throw new Error("usage: sim-scale-pair.js --against OTHER_DIST [--runs N] [--max-virtual-min M] SIZES VCPUS MODES");
const list = (s: string | undefined, d: string) => ((s ?? d) === "-" ? [] : (s ?? d).split(","));
const sizes = list(args[0], "1,4,16,64,256").map(Number);
const vcpuCounts = list(args[1], "1,2,4,8,16,32,64").map(Number);
const modes = list(args[2], "postcopy,precopy,hybrid");

const mine = fileURLToPath(new URL("./sim-scale.js", import.meta.url));
const theirs = `${against}/bench/sim-scale.js`;

function runOne(script: string, extraEnv: Record<string, string>, gib: number, vcpus: number, mode: string): Point {
  const argv = ["--max-old-space-size=16384", script, "--one", "web-server", String(gib), String(vcpus), mode, ...(maxMin === undefined ? [] : [maxMin])];
  // Each side's environment is its own: neither inherits the other's variables from this process.
  const env = { ...process.env };
  for (const k of new Set([...Object.keys(envBefore), ...Object.keys(envAfter)])) delete env[k];
  return JSON.parse(execFileSync(process.execPath, argv, { encoding: "utf8", maxBuffer: 1 << 20, env: { ...env, ...extraEnv } })) as Point;
}

const spread = (xs: number[], digits = 2) => `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
const sameRun = (a: Point, b: Point) =>
  a.events === b.events && a.totalMs === b.totalMs && a.pagesSent === b.pagesSent && a.faults === b.faults && a.accesses === b.accesses && a.rounds === b.rounds && a.outcome === b.outcome && a.verified === b.verified;

const rows: Row[] = [];
function point(axis: string, gib: number, vcpus: number, mode: string): void {
  const before: Point[] = [];
  const after: Point[] = [];
  for (let r = 0; r < runs; r++) {
    const order = r % 2 === 0 ? (["before", "after"] as const) : (["after", "before"] as const);
    for (const which of order) (which === "before" ? before : after).push(which === "before" ? runOne(theirs, envBefore, gib, vcpus, mode) : runOne(mine, envAfter, gib, vcpus, mode));
  }
  const all = [...before, ...after];
  const pages = (gib * 1024 ** 3) / 4096;
  const p = after[0];
  const q = before[0];
  const pageEvents = (x: Point) => x.pagesSent + x.faults + x.accesses;
  const bytesPerPage = (ps: Point[]) => Math.max(...ps.map((x) => (x.peakRss - x.rssBaseline) / pages)).toFixed(1);
  const row: Row = {
    axis,
    mode,
    guest_gib: gib,
    vcpus,
    simulated_s: Number((p.totalMs / 1000).toFixed(2)),
    queue_events: p.events,
    same_run: all.every((x) => sameRun(x, p)),
    same_run_within_each_build: before.every((x) => sameRun(x, q)) && after.every((x) => sameRun(x, p)),
    simulated_s_before: Number((q.totalMs / 1000).toFixed(2)),
    queue_events_before: q.events,
    cpu_s_before: spread(before.map((x) => x.cpuS)),
    cpu_s_after: spread(after.map((x) => x.cpuS)),
    speedup: Number((median(before.map((x) => x.cpuS)) / median(after.map((x) => x.cpuS))).toFixed(2)),
    wall_s_after: spread(after.map((x) => x.wallS)),
    user_s_before: spread(before.map((x) => x.userS)),
    user_s_after: spread(after.map((x) => x.userS)),
    sys_s_before: spread(before.map((x) => x.sysS)),
    sys_s_after: spread(after.map((x) => x.sysS)),
    // Huge pages: this process's at the end (MiB), and the system's huge-page faults during the run (every process's).
    huge_mib_before: Math.round(Math.max(...before.map((x) => x.hugeBytes ?? 0)) / 1048576),
    huge_mib_after: Math.round(Math.max(...after.map((x) => x.hugeBytes ?? 0)) / 1048576),
    thp_faults_before: Math.max(...before.map((x) => x.thpFaultsDuring ?? 0)),
    thp_faults_after: Math.max(...after.map((x) => x.thpFaultsDuring ?? 0)),
    ref_loop_ms: `${Math.round(Math.min(...all.map((x) => x.refMs)))}–${Math.round(Math.max(...all.map((x) => x.refMs)))}`,
    m_page_events_per_cpu_s_before: Number((pageEvents(q) / median(before.map((x) => x.cpuS)) / 1e6).toFixed(1)),
    m_page_events_per_cpu_s_after: Number((pageEvents(p) / median(after.map((x) => x.cpuS)) / 1e6).toFixed(1)),
    peak_rss_mib_before: Math.round(Math.max(...before.map((x) => x.peakRss)) / 1048576),
    peak_rss_mib_after: Math.round(Math.max(...after.map((x) => x.peakRss)) / 1048576),
    bytes_per_page_before: bytesPerPage(before),
    bytes_per_page_after: bytesPerPage(after),
    runs,
    outcome: p.outcome,
    verified: p.verified,
  };
  rows.push(row);
  process.stderr.write(JSON.stringify(row) + "\n");
}

for (const mode of modes) for (const gib of sizes) point("size", gib, 4, mode);
for (const vcpus of vcpuCounts) point("vcpus", 4, vcpus, "postcopy");
const envArgs = (name: string, env: Record<string, string>) => Object.entries(env).map(([k, v]) => ` ${name} ${k}=${v}`).join("");
const command = `node dist/bench/sim-scale-pair.js --against ${against}${envArgs("--env-before", envBefore)}${envArgs("--env-after", envAfter)} --runs ${runs}${maxMin === undefined ? "" : ` --max-virtual-min ${maxMin}`} ${sizes.join(",") || "-"} ${vcpuCounts.join(",") || "-"} ${modes.join(",") || "-"}`;
printBench("sim-scale-pair", command, { link: "10Gbit,0.1ms", workload: "web-server (4 vCPUs on the size axis, 4 GiB on the vCPU axis)", node: process.version }, rows);
