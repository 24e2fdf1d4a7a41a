/**
 * Real migrations between two network namespaces, beside the simulator's
 * prediction for the same workload, mode, seed and link.
 *
 *   sudo node dist/bench/netns.js [--rate 1Gbit] [--memory 256MiB] [--workloads idle,web-server,database]
 *        [--modes precopy,postcopy,hybrid] [--seed 1] [--burst BYTES] [--tbf-latency 5ms] [--tcp-wmem-max BYTES] [--timeout SECONDS] [--max-guest-s 180] [--json FILE]
 *
 * ppsim-a (10.77.0.1, source) and ppsim-b (10.77.0.2, destination) are joined
 * by a veth pair, each end shaped by a tbf qdisc. netem is not available, so
 * the latency is the veth's own: a Node-to-Node TCP round trip across it is
 * measured first, and half of it is the simulator's one-way latency (it then
 * includes the same event-loop hops a fault request pays). The namespaces are
 * always removed: finally, signal handlers, and leftovers at start.
 *
 * Guest steps: src/real/plan.ts sizes the source guest for ~400 MiB/s of page
 * traffic (loopback); over a slower link it would run out of steps mid-way and
 * stop dirtying memory. So each row is simulated first and the real source
 * gets `--steps` = step rate × (warmup + 1.5 × the simulator's total + 2 s),
 * capped at --max-guest-s (default 180) of guest time. The row records the
 * steps and whether the real report still says guest_finished_early.
 *
 * --host-cpu (issue 10 part 4): each migration also gets the host profile's
 * prediction — DEFAULT_HOST with the cores' figures measured just before and
 * just after it (calibrate --cpu-only, their mean), the real guest's warm-up
 * rate, the TCP rate measured across the veth and half the round trip measured while a bulk
 * transfer fills the veth (tbf is one FIFO: a demand reply waits behind the
 * bulk pages queued in it, which the simulator's urgent lane would not) — as
 * bench/sim-vs-real.ts makes over loopback; --runs N repeats the matrix,
 * --sizes A,B runs several memory sizes, and --runs-json FILE keeps those
 * runs in sim-vs-real's form (`node dist/bench/sim-vs-real.js --merge` joins
 * them with the loopback ones into one error table).
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, loadavg, release } from "node:os";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import type { Report } from "../src/engine/report.js";
import { MODES, type Mode } from "../src/engine/messages.js";
import { estimatedStepRate, scaleWorkload } from "../src/real/plan.js";
import { REAL_DEFAULTS } from "../src/real/source-agent.js";
import { parseLink } from "../src/sim/link.js";
import { simulate } from "../src/sim/simulation.js";
import { loadWorkload } from "../src/workload/parse.js";
import { parseByteSize } from "../src/workload/size.js";
import type { Workload } from "../src/workload/types.js";
import { parseSimFlags } from "../src/cli/sim-args.js";
import { simulateLikeReal } from "../src/cli/compare-real.js";
import { workloadFor } from "../src/cli/sim-command.js";
import { DEFAULT_HOST } from "../src/sim/host.js";
import { bracketed, measureCores, printTables, type Run } from "./sim-vs-real-table.js";
import { printBench, type Row } from "./table.js";

const NS_A = "ppsim-a";
const NS_B = "ppsim-b";
const IP_A = "10.77.0.1";
const IP_B = "10.77.0.2";
const PORT = 7070;
const MiB = 1024 * 1024;
const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
const examples = fileURLToPath(new URL("../../examples/", import.meta.url));
const children = new Set<ChildProcess>();

function fail(line: string): never {
  console.error(`netns bench: ${line}`);
  process.exit(1);
}

/** Runs a setup command; any failure is fatal (after cleanup, via the caller's finally). */
function sh(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")}: ${(r.stderr || r.error?.message || "").trim()}`);
  return r.stdout;
}

/** Synchronous, so it also works from signal and exit handlers. Killing the processes first lets `ip netns del` free the veth at once. */
function cleanup(): void {
  for (const c of children) c.kill("SIGKILL");
  children.clear();
  const listed = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
  for (const ns of [NS_A, NS_B]) {
    if (!new RegExp(`^${ns}( |$)`, "m").test(listed)) continue;
    // Leftovers of a crashed run: its agents may still sit in the namespace.
    const pids = (spawnSync("ip", ["netns", "pids", ns], { encoding: "utf8" }).stdout ?? "").split(/\s+/).filter(Boolean);
    for (const pid of pids) spawnSync("kill", ["-KILL", pid]);
    spawnSync("ip", ["netns", "del", ns]);
  }
}

function setup(rateBits: number, burst: number, tbfLatency: string, wmemMax: string | undefined): void {
  sh("ip", ["netns", "add", NS_A]);
  sh("ip", ["netns", "add", NS_B]);
  // Both ends are created inside the namespaces: nothing ever appears in the host's.
  sh("ip", ["link", "add", "ppsim-va", "netns", NS_A, "type", "veth", "peer", "name", "ppsim-vb", "netns", NS_B]);
  for (const [ns, dev, ip] of [[NS_A, "ppsim-va", IP_A], [NS_B, "ppsim-vb", IP_B]]) {
    sh("ip", ["-n", ns, "addr", "add", `${ip}/24`, "dev", dev]);
    sh("ip", ["-n", ns, "link", "set", "lo", "up"]);
    sh("ip", ["-n", ns, "link", "set", dev, "up"]);
    sh("tc", ["-n", ns, "qdisc", "add", "dev", dev, "root", "tbf", "rate", `${rateBits}bit`, "burst", String(burst), "latency", tbfLatency]);
    // Per-namespace: bounds the kernel send buffer, in which bulk pages hide from the engine's window.
    if (wmemMax !== undefined) sh("ip", ["netns", "exec", ns, "sysctl", "-q", "-w", `net.ipv4.tcp_wmem=4096 16384 ${wmemMax}`]);
  }
}

/** Spawns `node ARGS` inside a namespace; resolves with its exit code and output. */
function inNs(ns: string, args: string[], timeoutMs: number, onLine?: (l: string) => void): Promise<{ code: number; stdout: string; stderr: string }> {
  const c = spawn("ip", ["netns", "exec", ns, process.execPath, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.add(c);
  let stdout = "";
  let stderr = "";
  c.stdout.on("data", (d: Buffer) => {
    stdout += d.toString();
    if (onLine !== undefined) for (const l of d.toString().split("\n")) onLine(l);
  });
  c.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => c.kill("SIGKILL"), timeoutMs);
  return new Promise((resolve) =>
    c.on("close", (code, signal) => {
      clearTimeout(timer);
      children.delete(c);
      resolve({ code: code ?? (signal === "SIGKILL" ? 137 : 128), stdout, stderr });
    }),
  );
}

/** Starts `node ARGS` in ns B and resolves once it printed a line matching `ready` (then it is listening). */
function serveInB(args: string[], ready: RegExp, timeoutMs: number): Promise<{ done: Promise<{ code: number; stdout: string; stderr: string }> }> {
  return new Promise((resolve, reject) => {
    let up = false;
    const done = inNs(NS_B, args, timeoutMs, (l) => {
      if (!up && ready.test(l)) {
        up = true;
        resolve({ done });
      }
    });
    void done.then((r) => up || reject(new Error(`destination exited (${r.code}) before listening: ${r.stderr.trim()}`)));
  });
}

// A 1-byte echo (round trip) and a sink that acknowledges N/2 bytes on each of two connections (throughput; and the
// round trip while they fill the veth, as the agent's two bulk connections do in post-copy), across the shaped veth.
const PROBE_SERVER = `const net=require("net");let n=2;const up=()=>--n||console.log("ready");
net.createServer(c=>{c.setNoDelay(true);c.on("data",d=>c.write(d))}).listen(7071,"${IP_B}",up);
let open=2;net.createServer(c=>{let got=0;c.on("data",d=>{got+=d.length;if(got>=+process.argv[1]/2)c.end("k",()=>--open||process.exit(0))})}).listen(7072,"${IP_B}",up);`;
const PROBE_CLIENT = `const net=require("net"),{once}=require("events");(async()=>{
const s=net.connect(7071,"${IP_B}");s.setNoDelay(true);await once(s,"connect");const r=[];
for(let i=0;i<2000;i++){const t=process.hrtime.bigint();s.write("x");await once(s,"data");r.push(Number(process.hrtime.bigint()-t)/1000)}
s.destroy();r.sort((a,b)=>a-b);const total=+process.argv[1],chunk=Buffer.alloc(65536,7);
const bs=[net.connect(7072,"${IP_B}"),net.connect(7072,"${IP_B}")];for(const b of bs)await once(b,"connect");
const e=net.connect(7071,"${IP_B}");e.setNoDelay(true);await once(e,"connect");let busy=true;const l=[];
const pings=(async()=>{while(busy){const t=process.hrtime.bigint();e.write("x");await once(e,"data");if(busy)l.push(Number(process.hrtime.bigint()-t)/1000)}})();
const t0=process.hrtime.bigint();await Promise.all(bs.map(async(b)=>{for(let sent=0;sent<total/2;sent+=chunk.length)if(!b.write(chunk))await once(b,"drain");await once(b,"data")}));
const secs=Number(process.hrtime.bigint()-t0)/1e9;busy=false;await pings;for(const b of bs)b.destroy();e.destroy();l.sort((a,b)=>a-b);
console.log(JSON.stringify({rtt_p50_us:r[1000],rtt_min_us:r[0],rtt_p99_us:r[1980],tcp_mib_s:total/1048576/secs,rtt_loaded_p50_us:l[l.length>>1]??null,rtt_loaded_n:l.length}))})();`;

/** The veth's round trip idle (p50, min, p99) and while a bulk transfer fills it (p50: what a demand reply queued in tbf behind bulk pages meets), and its TCP throughput. */
interface VethProbe {
  rtt_p50_us: number;
  rtt_min_us: number;
  rtt_p99_us: number;
  tcp_mib_s: number;
  rtt_loaded_p50_us: number | null;
  rtt_loaded_n: number;
}

async function probe(): Promise<VethProbe> {
  const bytes = String(128 * MiB);
  const server = await serveInB(["-e", PROBE_SERVER, bytes], /^ready$/, 120_000);
  const client = await inNs(NS_A, ["-e", PROBE_CLIENT, bytes], 120_000);
  await server.done;
  if (client.code !== 0) throw new Error(`latency probe failed: ${client.stderr.trim()}`);
  return JSON.parse(client.stdout) as VethProbe;
}

/** One real migration: a fresh `--once` destination in B, the source in A. */
async function migrate(workload: string, mode: Mode, memory: string, seed: number, steps: number, timeoutMs: number, shaping: string): Promise<{ report: Report | null; error: string }> {
  const dest = await serveInB([bin, "real", "--listen", `${IP_B}:${PORT}`, "--once", "--insecure"], /^listening on /, timeoutMs + 30_000);
  const args = [bin, "real", "--peer", `${IP_B}:${PORT}`, "--trace", `${examples}${workload}.json`, "--mode", mode, "--memory", memory, "--seed", String(seed), "--steps", String(steps), "--json", "--insecure", "--netns", shaping];
  const src = await inNs(NS_A, args, timeoutMs);
  const d = await Promise.race([dest.done, new Promise<null>((r) => setTimeout(() => r(null), 30_000).unref())]);
  let report: Report | null = null;
  try {
    report = JSON.parse(src.stdout) as Report;
  } catch {
    /* no report: the error lines say why */
  }
  const lastLine = (s: string) => s.trim().split("\n").filter((l) => l.startsWith("ppsim:")).pop() ?? s.trim().split("\n").pop() ?? "";
  const error = src.code === 137 ? `source killed after ${timeoutMs / 1000} s` : src.code !== 0 ? lastLine(src.stderr) : d === null ? "destination did not exit" : d.code !== 0 ? `destination exit ${d.code}: ${lastLine(d.stderr + d.stdout)}` : "";
  return { report, error };
}

const rel = (sim: number, real: number | undefined): number | null => (real === undefined || real === 0 ? null : Math.round(((sim - real) / real) * 1000) / 1000);
const r3 = (x: number) => Math.round(x * 1000) / 1000;

/** Steps per vCPU so the real guest outlives the predicted migration: rate × (warmup + 1.5 × predicted + 2 s), at most maxGuestMs of guest time. */
function stepsFor(w: Workload, predictedMs: number, maxGuestMs: number): { steps: number; guestMs: number; capped: boolean } {
  const rate = estimatedStepRate(w); // steps per second per vCPU, vCPUs sharing this host's cores
  const wanted = w.warmupMs + 1.5 * predictedMs + 2000;
  const guestMs = Math.min(wanted, maxGuestMs);
  return { steps: Math.max(1, Math.ceil((rate * guestMs) / 1000)), guestMs, capped: wanted > maxGuestMs };
}

async function main(): Promise<void> {
  const { values: f } = benchArgs({
    options: { "host-cpu": { type: "boolean" }, runs: { type: "string" }, sizes: { type: "string" }, "runs-json": { type: "string" }, "max-s": { type: "string" }, rate: { type: "string" }, memory: { type: "string" }, workloads: { type: "string" }, modes: { type: "string" }, seed: { type: "string" }, burst: { type: "string" }, "tbf-latency": { type: "string" }, "tcp-wmem-max": { type: "string" }, timeout: { type: "string" }, "max-guest-s": { type: "string" }, json: { type: "string" } },
  });
  if (process.getuid?.() !== 0) fail("must run as root (it creates network namespaces and tc qdiscs)");
  for (const tool of ["ip", "tc"]) if (spawnSync(tool, ["-V"]).error !== undefined) fail(`\`${tool}\` not found (install iproute2)`);
  const rate = f.rate ?? "1Gbit";
  const bytesPerSec = parseLink(`${rate},0ms`).bandwidthBytesPerSec;
  const rateBits = Math.round(bytesPerSec * 8);
  // tbf's bucket: 1 ms of the rate (at least 16 KiB), enough for a TSO burst without letting it outrun the rate.
  const burst = Number(f.burst ?? Math.max(16384, Math.round(bytesPerSec / 1000)));
  const tbfLatency = f["tbf-latency"] ?? "5ms";
  const sizes = (f.sizes ?? f.memory ?? "256MiB").split(",");
  for (const size of sizes) {
    const b = parseByteSize(size);
    if (typeof b === "string") fail(`--memory/--sizes ${b}`);
  }
  const memory = sizes.join(",");
  const nRuns = Number(f.runs ?? 1);
  if (!(Number.isSafeInteger(nRuns) && nRuns >= 1)) fail("--runs must be an integer ≥ 1");
  const hostCpu = f["host-cpu"] === true;
  // No migration starts after this many seconds: a call stays within its turn under the shared lock.
  const deadline = Date.now() + parseFloat(f["max-s"] ?? "1e9") * 1000;
  const svr: Run[] = [];
  const started = new Date().toISOString();
  const workloads = (f.workloads ?? "idle,web-server,database").split(",");
  const modes = (f.modes ?? MODES.join(",")).split(",") as Mode[];
  const seed = Number(f.seed ?? 1);
  const timeoutMs = parseFloat(f.timeout ?? "300") * 1000;
  const maxGuestMs = parseFloat(f["max-guest-s"] ?? "180") * 1000;
  if (!(maxGuestMs > 0)) fail("--max-guest-s must be a positive number of seconds");

  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(sig, () => (cleanup(), process.exit(130)));
  process.on("exit", cleanup);
  cleanup();
  const rows: Row[] = [];
  const reports: { real: Report | null; sim: Report; error: string }[] = [];
  let net: Awaited<ReturnType<typeof probe>>;
  try {
    setup(rateBits, burst, tbfLatency, f["tcp-wmem-max"]);
    net = await probe();
    console.error(`veth + tbf ${rate}: round trip p50 ${net.rtt_p50_us.toFixed(0)} µs (min ${net.rtt_min_us.toFixed(0)}), ${net.rtt_loaded_p50_us?.toFixed(0) ?? "?"} µs while bulk fills it (${net.rtt_loaded_n} pings), TCP ${net.tcp_mib_s.toFixed(1)} MiB/s`);
    // --host-cpu's prediction: a tbf qdisc is one FIFO, so urgent replies queue behind bulk pages (~2.5 ms at 1 Gbit/s);
    // the simulator's urgent lane cuts in at packet boundaries instead, so it is given the round trip under load, and
    // the TCP rate measured across the veth (tbf counts Ethernet/IP/TCP headers: ~4.5 % below the nominal rate).
    const loadedLatencyMs = ((net.rtt_loaded_p50_us ?? net.rtt_p50_us) / 2 / 1000).toFixed(4);
    // The nominal rate, as asked of tbf; tbf counts Ethernet/IP/TCP headers too, so TCP carries ~4.4 % less (meta.veth.tcp_mib_s).
    const link = { bandwidthBytesPerSec: bytesPerSec, latencyUs: net.rtt_p50_us / 2 };
    for (let run = 1; run <= nRuns; run++)
    for (const size of sizes)
    for (const w of workloads) {
      for (const mode of modes) {
        if (Date.now() > deadline) {
          console.error(`${w} ${size} ${mode} #${run}: not run (--max-s)`);
          continue;
        }
        const memBytes = parseByteSize(size) as number;
        // Simulated first: its total sizes the real guest's run. The options are the real source agent's (its window and batch), so the engine decides alike.
        const workload = scaleWorkload(loadWorkload(`${examples}${w}.json`), memBytes);
        const sim = simulate({ workload, options: { ...REAL_DEFAULTS, mode }, link: { ...link }, seed });
        const plan = stepsFor(workload, sim.total_ms, maxGuestMs);
        console.error(`${w} ${mode}: sim ${sim.total_ms.toFixed(0)} ms → --steps ${plan.steps} (≈ ${(plan.guestMs / 1000).toFixed(1)} s of guest${plan.capped ? ", capped" : ""})`);
        const at = new Date().toISOString();
        const load1 = loadavg()[0];
        const before = hostCpu ? await measureCores() : null;
        const { report: real, error } = await migrate(w, mode, size, seed, plan.steps, timeoutMs, `veth ${NS_A}↔${NS_B}, tbf ${rate} (burst ${burst} B, latency ${tbfLatency}) each way`);
        reports.push({ real, sim, error });
        if (before !== null && real !== null && real.outcome === "completed") {
          const profile = bracketed(before, await measureCores());
          const choices = parseSimFlags({ trace: `${examples}${w}.json`, mode, memory: size, seed: String(seed), link: `${net.tcp_mib_s.toFixed(2)}MiB/s,${loadedLatencyMs}ms` });
          const wl = workloadFor(choices);
          svr.push({
            link: `netns tbf ${rate}`,
            workload: w,
            size,
            mode,
            run,
            at,
            limits: { cores_available: profile.cores_available ?? 0, loopback_mib_s: net.tcp_mib_s, loopback_rtt_us: net.rtt_loaded_p50_us ?? net.rtt_p50_us, load1 },
            profile,
            profile_before: before,
            real,
            sim_cpu: simulateLikeReal(choices, wl, real, profile).report,
            sim_default: simulateLikeReal(choices, wl, real, DEFAULT_HOST).report,
          });
          const cmd = `node dist/bench/netns.js ${process.argv.slice(2).join(" ")}`.trim();
          if (f["runs-json"] !== undefined) writeFileSync(f["runs-json"], JSON.stringify({ bench: "sim-vs-real", command: cmd, started, ended: at, veth: net, runs: svr }, null, 2));
          const last = svr[svr.length - 1];
          console.error(`${w} ${size} ${mode} #${run}: host-cpu prediction ${last.sim_cpu.total_ms.toFixed(0)} ms against ${real.total_ms} ms, faults ${last.sim_cpu.demand_faults}/${real.demand_faults}`);
        }
        const mib = (b: number) => r3(b / MiB);
        rows.push({
          workload: w,
          size,
          mode,
          verified: real?.verified === true,
          switchover: `${real?.switchover_reason ?? "-"}; ${sim.switchover_reason}`,
          rounds: `${real?.rounds.length ?? "-"}; ${sim.rounds.length}`,
          total_ms: real?.total_ms ?? null,
          sim_total_ms: sim.total_ms,
          total_err: rel(sim.total_ms, real?.total_ms),
          downtime_ms: real?.downtime_ms ?? null,
          sim_downtime_ms: sim.downtime_ms,
          downtime_err: rel(sim.downtime_ms, real?.downtime_ms),
          mib_sent: real === null ? null : mib(real.bytes_sent),
          sim_mib_sent: mib(sim.bytes_sent),
          bytes_err: rel(sim.bytes_sent, real?.bytes_sent),
          faults: `${real?.demand_faults ?? "-"}; ${sim.demand_faults}`,
          throttle: `${typeof real?.throttle === "number" ? r3(real.throttle) : "-"}; ${typeof sim.throttle === "number" ? r3(sim.throttle) : "-"}`,
          steps: plan.steps,
          finished_early: typeof real?.guest_finished_early === "boolean" ? real.guest_finished_early : null,
          error,
        });
        console.error(`${w} ${mode}: ${real === null ? "no report" : `${real.outcome}, verified ${String(real.verified)}, total ${real.total_ms} ms, downtime ${real.downtime_ms} ms`}${error ? ` — ${error}` : ""}`);
      }
    }
  } finally {
    cleanup();
  }
  const command = `node dist/bench/netns.js ${process.argv.slice(2).join(" ")}`.trim();
  const meta = { host: { cpus: availableParallelism(), kernel: release() }, rate, tbf: { rate_bits: rateBits, burst_bytes: burst, latency: tbfLatency }, tcp_wmem_max: f["tcp-wmem-max"] ?? "host default", veth: net, sim_latency_us: net.rtt_p50_us / 2, memory, seed };
  if (f.json !== undefined) writeFileSync(f.json, JSON.stringify({ bench: "netns", command, ...meta, rows, reports }, null, 2) + "\n");
  printBench("netns", command, meta, rows);
  if (hostCpu) printTables(svr);
}

main().catch((e: unknown) => {
  cleanup();
  fail(e instanceof Error ? e.message : String(e));
});
