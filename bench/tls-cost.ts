/**
 * What TLS costs a real post-copy migration on loopback: the same migration
 * in plaintext (--insecure) and over TLS with a pre-shared key, alternating,
 * `--runs` times each, in one run of this command. Beside it, measured in the
 * same run, the machine's own limits: loopback TCP throughput between two
 * Node processes, in plaintext and in TLS (the same cipher suite), which
 * bound the migration's background throughput in each mode.
 *
 *   npm run build && node dist/bench/tls-cost.js [--workload FILE] [--memory 1GiB] [--runs 3]
 *
 * The destination runs as a child process (`ppsim real --listen … --once`,
 * its own event loop as on another host), the source agent here. Prints a
 * JSON report and a markdown table.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { availableParallelism, cpus, release, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import type { Report } from "../src/engine/report.js";
import { spawnDemoDestination } from "../src/real/demo.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { INSECURE, loadPsk, type Security } from "../src/real/tls.js";
import { loadWorkload } from "../src/workload/parse.js";
import { formatBytes, parseByteSize } from "../src/workload/size.js";
import { markdownTable, median, type Row } from "./table.js";

const MiB = 1024 * 1024;
const KEY = "ab".repeat(32);

/** Loopback throughput between this process and a child that sinks: 1 GiB in 64 KiB writes, plaintext or TLS-PSK. */
async function loopback(tls: boolean): Promise<number> {
  const child = `
    const net = require("net"), tls = require("tls");
    const onConn = (c) => { let n = 0; c.on("data", (d) => { n += d.length; if (n >= ${1024 * MiB}) c.end("k"); }); };
    const s = ${tls} ? tls.createServer({ ciphers: "TLS_AES_128_GCM_SHA256", pskCallback: () => Buffer.from("${KEY}", "hex") }, onConn) : net.createServer(onConn);
    s.listen(0, "127.0.0.1", () => console.log(s.address().port));`;
  const p = spawn(process.execPath, ["-e", child], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((r) => p.stdout.once("data", (d: Buffer) => r(Number(d.toString().trim()))));
  const net = await import("node:net");
  const tlsMod = await import("node:tls");
  const sock = tls
    ? tlsMod.connect({ host: "127.0.0.1", port, ciphers: "TLS_AES_128_GCM_SHA256", pskCallback: () => ({ psk: Buffer.from(KEY, "hex"), identity: "bench" }), checkServerIdentity: () => undefined })
    : net.connect({ host: "127.0.0.1", port });
  await new Promise((r) => sock.once(tls ? "secureConnect" : "connect", r));
  const done = new Promise((r) => sock.once("data", r));
  const chunk = Buffer.alloc(64 * 1024, 7);
  const t0 = performance.now();
  for (let sent = 0; sent < 1024 * MiB; sent += chunk.length) {
    if (!sock.write(chunk)) await new Promise((r) => sock.once("drain", r));
  }
  await done;
  const secs = (performance.now() - t0) / 1000;
  sock.destroy();
  p.kill();
  return Math.round(1024 / secs);
}

async function migrateOnce(file: string, memBytes: number, bin: string, security: Security, pskPath: string): Promise<Report> {
  const args = security.kind === "insecure" ? ["--insecure"] : ["--psk-file", pskPath];
  const dest = await spawnDemoDestination(bin, () => undefined, args);
  const workload = scaleWorkload(loadWorkload(file), memBytes);
  const agent = await SourceAgent.start({ workload, mode: "postcopy", seed: 1, peer: { host: "127.0.0.1", port: dest.port }, security });
  try {
    return await agent.migrate();
  } finally {
    await agent.close();
    await dest.finish(60_000);
  }
}

const spread = (xs: number[]) => `${Math.min(...xs)}–${Math.max(...xs)}`;

async function main(): Promise<void> {
  const { values } = benchArgs({ options: { workload: { type: "string" }, memory: { type: "string" }, runs: { type: "string" }, json: { type: "string" } } });
  const file = values.workload ?? "examples/web-server.json";
  const mem = parseByteSize(values.memory ?? "1GiB");
  if (typeof mem === "string") throw new Error(`--memory ${mem}`);
  const runs = Number(values.runs ?? 3);
  const bin = fileURLToPath(new URL("../src/cli/bin.js", import.meta.url));
  const pskPath = join(tmpdir(), `ppsim-bench-${process.pid}.psk`);
  writeFileSync(pskPath, `bench:${KEY}\n`, { mode: 0o600 });
  const psk = loadPsk(pskPath);

  const limits = { tcp_mib_s: [] as number[], tls_mib_s: [] as number[] };
  const results: Record<"plaintext" | "tls-psk", Report[]> = { plaintext: [], "tls-psk": [] };
  for (let i = 0; i < runs; i++) {
    // Alternating, so that drift in the machine's load falls on both alike.
    limits.tcp_mib_s.push(await loopback(false));
    limits.tls_mib_s.push(await loopback(true));
    for (const [name, sec] of [["plaintext", INSECURE], ["tls-psk", psk]] as const) {
      const r = await migrateOnce(file, mem, bin, sec, pskPath);
      results[name].push(r);
      console.error(`run ${i + 1} ${name}: ${r.outcome}, verified ${String(r.verified)}, background ${r.background_mib_s} MiB/s, fault p50 ${r.fault_latency_us.p50} µs, total ${r.total_ms} ms`);
    }
  }
  const rows: Row[] = (["plaintext", "tls-psk"] as const).map((name) => {
    const rs = results[name];
    const bg = rs.map((r) => r.background_mib_s);
    const p50 = rs.map((r) => r.fault_latency_us.p50);
    const lim = name === "plaintext" ? limits.tcp_mib_s : limits.tls_mib_s;
    return {
      mode: name,
      verified: `${rs.filter((r) => r.outcome === "completed" && r.verified === true).length}/${rs.length}`,
      "background MiB/s median": median(bg),
      "background spread": spread(bg),
      "fault p50 µs median": median(p50),
      "fault p50 spread": spread(p50),
      "fault p99 µs median": median(rs.map((r) => r.fault_latency_us.p99)),
      "total ms median": median(rs.map((r) => r.total_ms)),
      "loopback limit MiB/s median": median(lim),
      "limit spread": spread(lim),
    };
  });
  const [plain, enc] = rows as Record<string, number>[];
  const ratio = {
    background_tls_over_plain: Math.round((enc["background MiB/s median"] / plain["background MiB/s median"]) * 1000) / 1000,
    fault_p50_tls_over_plain: Math.round((enc["fault p50 µs median"] / plain["fault p50 µs median"]) * 1000) / 1000,
    loopback_tls_over_plain: Math.round((enc["loopback limit MiB/s median"] / plain["loopback limit MiB/s median"]) * 1000) / 1000,
  };
  const command = `node dist/bench/tls-cost.js --workload ${file} --memory ${formatBytes(mem)} --runs ${runs}`;
  const host = { cpus: availableParallelism(), cpu: cpus()[0]?.model ?? "?", kernel: release(), node: process.version };
  const out = { bench: "tls-cost", command, host, ratio, limits, rows, runs: results };
  if (values.json !== undefined) writeFileSync(values.json, JSON.stringify(out, null, 2) + "\n");
  console.log(JSON.stringify({ ...out, runs: undefined }, null, 2));
  console.log();
  console.log(markdownTable(rows));
  console.log();
  console.log(`TLS / plaintext: background ${ratio.background_tls_over_plain}, fault p50 ${ratio.fault_p50_tls_over_plain}, loopback limit ${ratio.loopback_tls_over_plain}`);
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : String(e));
  process.exit(1);
});
