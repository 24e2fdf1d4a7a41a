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
import { existsSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { DEFAULT_MAX_SESSIONS, DestinationAgent, type DestinationAgentOptions } from "../real/dest-agent.js";
import { spawnDemoDestination } from "../real/demo.js";
import type { InstallMode } from "../real/dataplane.js";
import { messageOf } from "../real/errors.js";
import { scaleWorkload } from "../real/plan.js";
import { constants } from "../real/native.js";
import { MAX_BULK_CONNECTIONS } from "../real/preamble.js";
import { DEFAULT_BULK_CONNECTIONS } from "../real/source-link.js";
import { runningSources } from "../real/registry.js";
import { securityFromFlags, type Security, type SecurityFlags } from "../real/tls.js";
import { loadWorkload } from "../workload/parse.js";
import { parseByteSize } from "../workload/size.js";
import { UsageError } from "./errors.js";
import { joinNegativeValues } from "./negative-values.js";
import { runSource } from "./real-source.js";
import { parseDurationMs, parseMode, parsePolicyFlags, POLICY_FLAGS, type PolicyFlags } from "./sim-args.js";

const FLAGS = {
  ...POLICY_FLAGS,
  listen: { type: "string" },
  once: { type: "boolean" },
  peer: { type: "string", multiple: true },
  demo: { type: "boolean" },
  trace: { type: "string" },
  mode: { type: "string" },
  seed: { type: "string" },
  steps: { type: "string" },
  memory: { type: "string" },
  json: { type: "boolean" },
  plain: { type: "boolean" },
  report: { type: "string" },
  "break-link-after": { type: "string" },
  connections: { type: "string" },
  netns: { type: "string" },
  "psk-file": { type: "string" },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "tls-ca": { type: "string" },
  insecure: { type: "boolean" },
  "max-memory": { type: "string" },
  "max-sessions": { type: "string" },
  standby: { type: "string" },
  "standby-sync": { type: "boolean" },
  "reconnect-wait": { type: "string" },
  install: { type: "string" },
  prealloc: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

export const REAL_USAGE = `ppsim real:
  cancel [--pid PID]      ask your running source agent(s) on this machine to cancel (refused past switchover)
  --listen HOST:PORT      destination: receive migrations (port 0: any free port) until killed
  --once                  with --listen: serve one migration, then exit (0 if it completed)
  --peer HOST:PORT        source: run the workload's guest and migrate it to this destination; repeat it
                          to name fallbacks: a migration that fails with the source guest still running
                          (before the destination's guest ran) migrates the same guest to the next one.
                          If the last fails so, the agent keeps the guest running until Ctrl+C
                          (or \`ppsim real cancel --pid PID\`)
  --demo                  source and destination on this machine, over loopback
  --trace FILE            workload file (source, demo)
  --mode MODE             postcopy, precopy (default) or hybrid
  --seed N                workload seed (default 1)
  --steps N               steps per vCPU (default: chosen so the guest outlives the migration)
  --memory SIZE           override the workload's memory size, e.g. 256MiB
  --json                  print the report as one JSON object
  --plain                 progress lines instead of the live view
  --report FILE.html      also write an HTML report with charts (see ppsim --help)
  --break-link-after SIZE break the link once SIZE of post-copy pages went out (recovery demo)
  --connections N         bulk connections for post-copy pages once the destination runs (1–8, default ${DEFAULT_BULK_CONNECTIONS})
  --netns TEXT            with --peer: the peer is across a network-namespace link shaped as TEXT
                          (e.g. "veth, tbf 1Gbit"); the report's real_link records it (bench/netns.ts)
  --psk-file FILE         TLS with a pre-shared key, the same file on both hosts: one line IDENTITY:HEXKEY,
                          e.g. printf 'ppsim:%s\n' "$(openssl rand -hex 32)" > keys.psk
  --tls-cert FILE --tls-key FILE --tls-ca FILE
                          TLS with x509 certificates, verified both ways against the CA
  --insecure              no TLS: memory in the clear, any host that reaches the port may migrate
                          (--listen and --peer need one of the three; --demo defaults to --insecure on loopback)
  --max-memory SIZE       with --listen: guest memory of all migrations together, at most
                          (default: 3/4 of the host's free memory at start)
  --max-sessions N        with --listen: concurrent migrations, at most (default 4)
  --standby DIR           source: keep a standby copy of guest memory in DIR (storage the destination
                          reaches too), so that the VM survives the source's death after switchover;
                          destination (--listen): where sources keep theirs (docs/standby.md)
  --standby-sync          source: make each standby write durable (fdatasync) before it counts
  --reconnect-wait TIME   after switchover, how long a broken link may stay down (default 60s); a
                          destination with --standby then fills the missing pages from the copy
  --install copy|continue destination (--listen, --demo): how the native bulk receivers install pages —
                          UFFDIO_COPY (default), or into the page cache and UFFDIO_CONTINUE (docs/native.md)
  --prealloc SIZE         destination (--listen, --demo): keep SIZE of guest memory allocated and zeroed
                          ahead, for the next migration of a guest of exactly that size (install mode
                          continue; --demo: SIZE or "guest", the workload's size). Its cost is paid before
                          the migration starts (docs/real-benchmarks.md)
  policy flags as for the simulator (ppsim --help): --downtime-limit, --downtime-margin, --max-rounds,
  --hybrid-rounds, --bandwidth-cap, --no-auto-converge, --background-order, --prefetch-pages`;

type Out = (line: string) => void;


/** "HOST:PORT", ":PORT" (all interfaces) or "[v6]:PORT". */
export function parseHostPort(flag: string, text: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 0 && port <= 65535)) throw new UsageError(`--${flag} must be HOST:PORT (e.g. 127.0.0.1:7070 or :7070), got "${text}"`);
  const host = m[1] ?? m[2];
  return { host: host === "" ? "0.0.0.0" : host, port };
}

function integerFlag(flag: string, text: string | undefined, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  const range = max === Number.MAX_SAFE_INTEGER ? `≥ ${min}` : `from ${min} to ${max}`;
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`--${flag} must be an integer ${range}, got "${text}"`);
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
  const { values: f } = parseArgs({ args: joinNegativeValues(argv, FLAGS), options: FLAGS, strict: true, allowPositionals: false });
  if (f.help === true) {
    out(REAL_USAGE);
    return 0;
  }
  const roles = [f.listen !== undefined, f.peer !== undefined, f.demo === true].filter(Boolean).length;
  if (roles !== 1) throw new UsageError("ppsim real needs exactly one of --listen HOST:PORT, --peer HOST:PORT or --demo\n" + REAL_USAGE);
  const demo = f.demo === true;
  const security = securityOf(f, demo);
  const reconnectWaitMs = reconnectWait(f["reconnect-wait"]);
  if (f.listen !== undefined) {
    if (f["standby-sync"] === true) throw new UsageError("--standby-sync is for the source: it writes the copy");
    const prealloc = preallocOf(f, null);
    return runListen(parseHostPort("listen", f.listen), { once: f.once === true, security, ...limitsOf(f), standbyDir: standbyDir(f.standby), reconnectWaitMs, ...installOf(f.install), ...prealloc }, out);
  }
  if (f["max-memory"] !== undefined || f["max-sessions"] !== undefined) throw new UsageError("--max-memory and --max-sessions are for the destination (--listen)");
  if (f.install !== undefined && !demo) throw new UsageError("--install is for the destination (--listen, or --demo)");
  if (f.prealloc !== undefined && !demo) throw new UsageError("--prealloc is for the destination (--listen, or --demo)");
  installOf(f.install); // checked before the demo spawns its destination
  const peers = (f.peer ?? []).map((p) => parseHostPort("peer", p));
  if (f.trace === undefined) throw new UsageError("--trace FILE is required: the workload to run and migrate (see examples/)");
  if (f.netns !== undefined && peers.length === 0) throw new UsageError("--netns describes the link to a --peer; the demo runs over loopback");
  if (f.netns !== undefined && (f.netns.trim() === "" || f.netns.length > 200)) throw new UsageError("--netns needs a short description of the link's shaping (1–200 characters)");
  const netns = f.netns === undefined ? undefined : ({ kind: "netns", text: `netns link to ${(f.peer ?? []).join(", ")}: ${f.netns.trim()}` } as const);
  return peers.length === 0 ? runDemo(f, security, out) : runSource(f, sourceChoices(f), peers, security, out, netns);
}

function securityOf(f: SecurityFlags, demo: boolean): Security {
  try {
    return securityFromFlags(f, demo);
  } catch (e) {
    throw new UsageError(messageOf(e));
  }
}

/** The security flags again, for the demo's destination child. */
function securityArgs(f: SecurityFlags): string[] {
  const args: string[] = [];
  for (const k of ["psk-file", "tls-cert", "tls-key", "tls-ca"] as const) {
    const v = f[k];
    if (v !== undefined) args.push(`--${k}`, v);
  }
  return args.length === 0 ? ["--insecure"] : args;
}

function reconnectWait(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const ms = parseDurationMs("reconnect-wait", text);
  if (!(ms > 0)) throw new UsageError(`--reconnect-wait must be a positive duration like 5s, got "${text}"`);
  return ms;
}

/** --standby DIR: an existing directory (the copy's folder goes inside it). */
function standbyDir(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  let ok = false;
  try {
    ok = statSync(text).isDirectory();
  } catch {
    /* not there */
  }
  if (!ok) throw new UsageError(`--standby must name an existing directory, got "${text}"`);
  return text;
}

function limitsOf(f: { "max-memory"?: string; "max-sessions"?: string }): { maxMemoryBytes?: number; maxSessions?: number } {
  return { maxMemoryBytes: sizeFlag("max-memory", f["max-memory"]) ?? undefined, maxSessions: integerFlag("max-sessions", f["max-sessions"], 1) };
}

async function runListen(at: { host: string; port: number }, o: DestinationAgentOptions & { once: boolean; security: Security }, out: Out): Promise<number> {
  const once = o.once;
  const agent = await DestinationAgent.listen(at.host, at.port, { ...o, log: (l) => out(l) });
  out(`listening on ${at.host}:${agent.port}`);
  const auth = o.security.kind === "insecure" ? "no TLS (--insecure): any host that reaches the port may migrate here" : o.security.kind === "psk" ? "TLS with a pre-shared key" : "TLS with x509 certificates";
  out(`  ${auth}; at most ${o.maxSessions ?? DEFAULT_MAX_SESSIONS} migrations and ${(agent.maxMemoryBytes / 2 ** 30).toFixed(1)} GiB of guest memory at once`);
  const stop = () => void agent.close();
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
  const ends = await agent.done;
  process.off("SIGINT", stop);
  process.off("SIGTERM", stop);
  return once && ends[0]?.outcome !== "completed" ? 1 : 0;
}

export type SourceFlags = PolicyFlags &
  SecurityFlags & {
    trace?: string;
    mode?: string;
    seed?: string;
    steps?: string;
    memory?: string;
    json?: boolean;
    plain?: boolean;
    report?: string;
    "break-link-after"?: string;
    connections?: string;
    standby?: string;
    "standby-sync"?: boolean;
    "reconnect-wait"?: string;
    install?: string;
    prealloc?: string;
  };

async function runDemo(f: SourceFlags, security: Security, out: Out): Promise<number> {
  const choices = sourceChoices(f);
  // The destination runs as a child process (its own event loop, like on
  // another host) when the built CLI is there; else in this process.
  const bin = fileURLToPath(new URL("./bin.js", import.meta.url));
  const destLines: string[] = [];
  const quiet = f.json === true || (process.stdout.isTTY && f.plain !== true);
  const destLog = (l: string) => (quiet ? destLines.push(l) : out(`  [destination] ${l}`));
  if (security.kind === "insecure") {
    const note = "ppsim: the demo runs over loopback without TLS (--insecure); give --psk-file FILE to try it encrypted";
    if (quiet) process.stderr.write(`${note}\n`);
    else out(note);
  }
  const prealloc = preallocOf(f, choices.workload.memBytes);
  if (!existsSync(bin)) {
    const agent = await DestinationAgent.listen("127.0.0.1", 0, { once: true, log: destLog, security, standbyDir: f.standby, reconnectWaitMs: reconnectWait(f["reconnect-wait"]), ...installOf(f.install), ...prealloc });
    try {
      return await runSource(f, choices, [{ host: "127.0.0.1", port: agent.port }], security, out, LOOPBACK);
    } finally {
      await agent.close();
    }
  }
  const standby = [...(f.standby === undefined ? [] : ["--standby", f.standby]), ...(f["reconnect-wait"] === undefined ? [] : ["--reconnect-wait", f["reconnect-wait"]]), ...(f.install === undefined ? [] : ["--install", f.install]), ...(prealloc.prealloc === undefined ? [] : ["--prealloc", String(prealloc.prealloc)])];
  const dest = await spawnDemoDestination(bin, destLog, [...securityArgs(f), ...standby]);
  let code = 1;
  try {
    code = await runSource(f, choices, [{ host: "127.0.0.1", port: dest.port }], security, out, LOOPBACK);
  } finally {
    const destCode = await dest.finish(30_000);
    if (destCode !== 0 && code === 0) code = 1;
    if (code !== 0 && quiet) for (const l of destLines) process.stderr.write(`  [destination] ${l}\n`);
  }
  return code;
}

/** The source's flags, checked (before the demo spawns its destination: a bad flag must not leave it waiting). */
export type SourceChoices = ReturnType<typeof sourceChoices>;

function sourceChoices(f: SourceFlags) {
  return {
    mode: parseMode(f.mode ?? "precopy"),
    seed: integerFlag("seed", f.seed, 0) ?? 1,
    steps: integerFlag("steps", f.steps, 1),
    workload: scaleWorkload(loadWorkload(f.trace ?? ""), sizeFlag("memory", f.memory)),
    breakAt: sizeFlag("break-link-after", f["break-link-after"]) ?? undefined,
    connections: integerFlag("connections", f.connections, 1, MAX_BULK_CONNECTIONS) ?? DEFAULT_BULK_CONNECTIONS,
    options: { ...parsePolicyFlags(f), ...withReconnect(reconnectWait(f["reconnect-wait"])) },
    standby: standbyOf(f),
  };
}

/**
 * --prealloc SIZE (demo: or "guest", the workload's memory): bytes of guest memory populated ahead, a
 * multiple of the host page; it installs by "continue", so --install copy with it is refused.
 */
function preallocOf(f: { prealloc?: string; install?: string }, guestBytes: number | null): { prealloc?: number } {
  if (f.prealloc === undefined) return {};
  if (f.install === "copy") throw new UsageError("--prealloc installs with UFFDIO_CONTINUE into the populated memory: it cannot go with --install copy");
  const bytes = f.prealloc === "guest" && guestBytes !== null ? guestBytes : sizeFlag("prealloc", f.prealloc);
  if (bytes === null || bytes <= 0 || bytes % constants().PAGE_SIZE !== 0) {
    throw new UsageError(`--prealloc must be a size that is a multiple of ${constants().PAGE_SIZE} bytes${guestBytes !== null ? ', or "guest"' : ""}, got "${f.prealloc}"`);
  }
  return { prealloc: bytes };
}

/** --install copy|continue (absent: the agent's default, PPSIM_INSTALL or copy). */
function installOf(text: string | undefined): { install?: InstallMode } {
  if (text === undefined) return {};
  if (text !== "copy" && text !== "continue") throw new UsageError(`--install must be copy or continue, got "${text}"`);
  return { install: text };
}

function withReconnect(ms: number | undefined): { reconnectTimeoutMs?: number } {
  return ms === undefined ? {} : { reconnectTimeoutMs: ms };
}

function standbyOf(f: SourceFlags): { dir: string; sync: boolean } | undefined {
  const dir = standbyDir(f.standby);
  if (dir === undefined) {
    if (f["standby-sync"] === true) throw new UsageError("--standby-sync needs --standby DIR");
    return undefined;
  }
  return { dir, sync: f["standby-sync"] === true };
}

const LOOPBACK = { kind: "loopback", text: "loopback (ppsim real --demo)" } as const;

