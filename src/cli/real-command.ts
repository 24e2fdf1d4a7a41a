/**
 * `ppsim real …`: the real back end.
 *
 *   ppsim real --listen HOST:PORT [--once]                 destination: serve migrations
 *   ppsim real --peer HOST:PORT --trace FILE [flags]       source: run the workload, migrate it
 *   ppsim real --demo --trace FILE [flags]                 both, on this machine over loopback
 *   ppsim real cancel [--pid PID]                          ask running source agents to cancel
 *
 * The source shows the live view on a TTY (q cancels; refused past
 * switchover), plain lines otherwise, or one JSON object with --json. Exit
 * code 0 only for a completed and verified migration.
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runPlain, runTui, type ViewSource } from "../../tui/index.js";
import type { Report } from "../engine/report.js";
import { DestinationAgent } from "../real/dest-agent.js";
import { spawnDemoDestination } from "../real/demo.js";
import { messageOf } from "../real/errors.js";
import { scaleWorkload } from "../real/plan.js";
import { registerSource, runningSources } from "../real/registry.js";
import { SourceAgent } from "../real/source-agent.js";
import { loadWorkload } from "../workload/parse.js";
import { formatBytes, parseByteSize } from "../workload/size.js";
import { UsageError } from "./errors.js";
import { parseMode, parsePolicyFlags, POLICY_FLAGS, type PolicyFlags } from "./sim-args.js";

const FLAGS = {
  ...POLICY_FLAGS,
  listen: { type: "string" },
  once: { type: "boolean" },
  peer: { type: "string" },
  demo: { type: "boolean" },
  trace: { type: "string" },
  mode: { type: "string" },
  seed: { type: "string" },
  steps: { type: "string" },
  memory: { type: "string" },
  json: { type: "boolean" },
  plain: { type: "boolean" },
  "break-link-after": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export const REAL_USAGE = `ppsim real:
  cancel [--pid PID]      ask your running source agent(s) on this machine to cancel (refused past switchover)
  --listen HOST:PORT      destination: receive migrations (port 0: any free port) until killed
  --once                  with --listen: serve one migration, then exit (0 if it completed)
  --peer HOST:PORT        source: run the workload's guest and migrate it to this destination
  --demo                  source and destination on this machine, over loopback
  --trace FILE            workload file (source, demo)
  --mode MODE             postcopy, precopy (default) or hybrid
  --seed N                workload seed (default 1)
  --steps N               steps per vCPU (default: chosen so the guest outlives the migration)
  --memory SIZE           override the workload's memory size, e.g. 256MiB
  --json                  print the report as one JSON object
  --plain                 progress lines instead of the live view
  --break-link-after SIZE break the link once SIZE of post-copy pages went out (recovery demo)
  policy flags as for the simulator (ppsim --help): --downtime-limit, --max-rounds, --hybrid-rounds,
  --bandwidth-cap, --no-auto-converge, --background-order, --prefetch-pages`;

type Out = (line: string) => void;

/** "HOST:PORT", ":PORT" (all interfaces) or "[v6]:PORT". */
export function parseHostPort(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 0 && port <= 65535)) throw new UsageError(`--${flag} must be HOST:PORT (e.g. 127.0.0.1:7070 or :7070), got "${text}"`);
  const host = m[1] ?? m[2];
  return { host: host === "" ? "0.0.0.0" : host, port };
}

function integerFlag(flag: string, text: string | undefined, min: number): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${flag} must be an integer ≥ ${min}, got "${text}"`);
  return n;
}

function sizeFlag(flag: string, text: string | undefined): number | null {
  if (text === undefined) return null;
  const size = parseByteSize(text);
  if (typeof size === "string") throw new UsageError(`--${flag} ${size}`);
  return size;
}

/** `ppsim real cancel`: SIGINT to the running source agents (or one), which cancel if they still can. */
function runCancel(argv: string[], out: Out): number {
  const { values } = parseArgs({ args: argv, options: { pid: { type: "string" } }, strict: true, allowPositionals: false });
  const wanted = integerFlag("pid", values.pid, 1);
  const running = runningSources().filter((r) => wanted === undefined || r.pid === wanted);
  if (running.length === 0) {
    throw new UsageError(wanted === undefined ? "no running source agent of yours on this machine (ppsim real --peer/--demo)" : `no running source agent with pid ${wanted}`);
  }
  for (const r of running) {
    process.kill(r.pid, "SIGINT");
    out(`asked source agent ${r.pid} (${r.workload}, ${r.mode} to ${r.peer}) to cancel; past switchover it refuses, and its output says so`);
  }
  return 0;
}

export async function runRealCommand(argv: string[], out: Out): Promise<number> {
  if (argv[0] === "cancel") return runCancel(argv.slice(1), out);
  const { values: f } = parseArgs({ args: argv, options: FLAGS, strict: true, allowPositionals: false });
  if (f.help === true) {
    out(REAL_USAGE);
    return 0;
  }
  const roles = [f.listen !== undefined, f.peer !== undefined, f.demo === true].filter(Boolean).length;
  if (roles !== 1) throw new UsageError("ppsim real needs exactly one of --listen HOST:PORT, --peer HOST:PORT or --demo\n" + REAL_USAGE);
  if (f.listen !== undefined) return runListen(parseHostPort("listen", f.listen), f.once === true, out);
  const peer = f.peer === undefined ? null : parseHostPort("peer", f.peer);
  if (f.trace === undefined) throw new UsageError("--trace FILE is required: the workload to run and migrate (see examples/)");
  return peer === null ? runDemo(f, out) : runSource(f, peer, out);
}

async function runListen(at: { host: string; port: number }, once: boolean, out: Out): Promise<number> {
  const agent = await DestinationAgent.listen(at.host, at.port, { once, log: (l) => out(l) });
  out(`listening on ${at.host}:${agent.port}`);
  const stop = () => void agent.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const ends = await agent.done;
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  return once && ends[0]?.outcome !== "completed" ? 1 : 0;
}

type SourceFlags = PolicyFlags & { trace?: string; mode?: string; seed?: string; steps?: string; memory?: string; json?: boolean; plain?: boolean; "break-link-after"?: string };

async function runDemo(f: SourceFlags, out: Out): Promise<number> {
  // The destination runs as a child process (its own event loop, like on
  // another host) when the built CLI is there; else in this process.
  const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
  const destLines: string[] = [];
  const quiet = f.json === true || (process.stdout.isTTY && f.plain !== true);
  const destLog = (l: string) => (quiet ? destLines.push(l) : out(`  [destination] ${l}`));
  if (!existsSync(bin)) {
    const agent = await DestinationAgent.listen("127.0.0.1", 0, { once: true, log: destLog });
    try {
      return await runSource(f, { host: "127.0.0.1", port: agent.port }, out);
    } finally {
      await agent.close();
    }
  }
  const dest = await spawnDemoDestination(bin, destLog);
  let code = 1;
  try {
    code = await runSource(f, { host: "127.0.0.1", port: dest.port }, out);
  } finally {
    const destCode = await dest.finish(30_000);
    if (destCode !== 0 && code === 0) code = 1;
    if (code !== 0 && quiet) for (const l of destLines) process.stderr.write(`  [destination] ${l}\n`);
  }
  return code;
}

async function runSource(f: SourceFlags, peer: { host: string; port: number }, out: Out): Promise<number> {
  const mode = parseMode(f.mode ?? "precopy");
  const seed = integerFlag("seed", f.seed, 0) ?? 1;
  const steps = integerFlag("steps", f.steps, 1);
  const workload = scaleWorkload(loadWorkload(f.trace ?? ""), sizeFlag("memory", f.memory));
  const breakAt = sizeFlag("break-link-after", f["break-link-after"]) ?? undefined;
  const tty = process.stdout.isTTY && f.plain !== true && f.json !== true;
  const logLines: string[] = [];
  const log = (l: string) => (f.json === true ? process.stderr.write(`${l}\n`) : tty ? logLines.push(l) : out(`· ${l}`));

  const options = parsePolicyFlags(f);
  const agent = await SourceAgent.start({ workload, mode, seed, steps, peer, options, breakLinkAfterPostcopyBytes: breakAt, log });
  let report: Report;
  // SIGINT (Ctrl+C, or `ppsim real cancel`) cancels in every output mode; past switchover it is refused.
  const onSigint = () => {
    const refused = agent.cancel();
    if (refused !== null) log(`cancel refused: ${refused}`);
  };
  const unregister = registerSource({ workload: workload.name, peer: `${peer.host}:${peer.port}`, mode });
  process.on("SIGINT", onSigint);
  try {
    log(`source guest: ${workload.name}, ${formatBytes(workload.memBytes)}, ${workload.vcpus} vCPUs, ${agent.steps} steps each; ${mode} to ${peer.host}:${peer.port}`);
    const migration = agent.migrate();
    const view: ViewSource = { snapshot: () => agent.snapshot(), done: () => agent.done, cancel: () => agent.cancel() };
    if (f.json === true) {
      report = await migration;
      out(JSON.stringify(report, null, 2));
    } else if (tty) {
      await runTui(view);
      report = await migration;
      for (const l of logLines) out(`· ${l}`);
    } else {
      await runPlain(view, { write: out });
      report = await migration;
    }
  } finally {
    process.off("SIGINT", onSigint);
    unregister();
    await agent.close().catch((e: unknown) => process.stderr.write(`ppsim: closing the source guest: ${messageOf(e)}\n`));
  }
  if (report.outcome === "completed" && report.verified === true) return 0;
  process.stderr.write(`ppsim: migration ${report.outcome === "completed" ? "not verified" : report.outcome}: ${String(report.reason)}\n`);
  return 1;
}
