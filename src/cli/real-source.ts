/** The source side of `ppsim real`: one guest, migrated to each --peer in turn (issue 16), shown live. */
import { runPlain, runTui, type ViewSource } from "../../tui/index.js";
import type { Report } from "../engine/report.js";
import { SampleLog, writeHtmlReport } from "../html-report/index.js";
import { messageOf } from "../real/errors.js";
import { sanitize } from "../real/peer-text.js";
import { registerSource } from "../real/registry.js";
import { SourceAgent } from "../real/source-agent.js";
import type { Security } from "../real/tls.js";
import { formatBytes } from "../workload/size.js";
import type { SourceChoices, SourceFlags } from "./real-command.js";

type Out = (line: string) => void;

/** With --json and --report, how often the source's snapshot is sampled for the charts. */
const REPORT_POLL_MS = 50;

export type Peer = { host: string; port: number };
const hostPort = (p: Peer) => `${p.host}:${p.port}`;

/**
 * `ppsim real --peer …` (and the demo's source): runs the workload's guest
 * and migrates it to each peer in turn while a migration fails with the guest
 * still running here; after the last such failure it keeps the guest running
 * until SIGINT/SIGTERM rather than ending it.
 */
export async function runSource(f: SourceFlags, choices: SourceChoices, peers: Peer[], security: Security, out: Out, link?: { kind: "loopback" | "netns"; text: string }): Promise<number> {
  const { mode, seed, steps, workload, breakAt, options, standby, connections } = choices;
  const tty = process.stdout.isTTY && f.plain !== true && f.json !== true;
  const logLines: string[] = [];
  const log = (l: string) => (f.json === true ? process.stderr.write(`${l}\n`) : tty ? logLines.push(l) : out(`· ${l}`));

  const agent = await SourceAgent.start({ workload, mode, seed, steps, peer: peers[0], options, breakLinkAfterPostcopyBytes: breakAt, log, security, link, standby, connections });
  let report: Report | null = null;
  let endWait: (() => void) | null = null;
  // SIGINT (Ctrl+C, or `ppsim real cancel`) cancels in every output mode; past switchover it is refused.
  // Once a failed migration left the guest running here, it ends the agent and its guest.
  const onSigint = () => {
    if (endWait !== null) return endWait();
    const refused = agent.cancel();
    if (refused !== null) log(`cancel refused: ${refused}`);
  };
  const unregister = registerSource({ workload: workload.name, peer: peers.map(hostPort).join(","), mode });
  process.on("SIGINT", onSigint);
  try {
    log(`source guest: ${workload.name}, ${formatBytes(workload.memBytes)}, ${workload.vcpus} vCPUs, ${agent.steps} steps each; ${mode} to ${hostPort(peers[0])}`);
    for (let i = 0; i < peers.length; i++) {
      if (i > 0) log(`the source guest runs on; migrating it to the next destination, ${hostPort(peers[i])}`);
      report = await migrateOnce(agent, peers[i], f, tty, logLines, out, `ppsim real: ${workload.name}, ${mode}`);
      if (report.outcome !== "failed" || !agent.guestRunsHere) break;
      if (i + 1 < peers.length) process.stderr.write(`ppsim: migration to ${hostPort(peers[i])} failed: ${sanitize(String(report.reason), 2000)}\n`);
    }
    if (report !== null && report.outcome === "failed" && agent.guestRunsHere) {
      process.stderr.write(`ppsim: migration failed: ${sanitize(String(report.reason), 2000)}\n`);
      process.stderr.write(`ppsim: the source guest keeps running in this agent (pid ${process.pid}); Ctrl+C, SIGTERM or \`ppsim real cancel --pid ${process.pid}\` ends it\n`);
      process.on("SIGTERM", onSigint);
      await new Promise<void>((r) => (endWait = r));
      return 1;
    }
  } finally {
    process.off("SIGINT", onSigint);
    process.off("SIGTERM", onSigint);
    unregister();
    await agent.close().catch((e: unknown) => process.stderr.write(`ppsim: closing the source guest: ${messageOf(e)}\n`));
  }
  if (report === null) return 1;
  if (report.outcome === "completed" && report.verified === true) return 0;
  // The reason may quote the destination: shown through sanitize, like every peer text.
  process.stderr.write(`ppsim: migration ${report.outcome === "completed" ? "not verified" : report.outcome}: ${sanitize(String(report.reason), 2000)}\n`);
  return 1;
}

/** One migration of the agent's guest to `peer`, shown live (TUI, plain lines or --json). */
async function migrateOnce(agent: SourceAgent, peer: Peer, f: SourceFlags, tty: boolean, logLines: string[], out: Out, title: string): Promise<Report> {
  const migration = agent.migrate(peer);
  // The live view's snapshots (or, with --json, a poll) are the HTML report's samples.
  const samples = f.report !== undefined ? new SampleLog() : null;
  const snapshot = () => {
    const s = agent.snapshot();
    samples?.add(s);
    return s;
  };
  const poll = samples !== null && f.json === true ? setInterval(snapshot, REPORT_POLL_MS) : undefined;
  const view: ViewSource = { snapshot, done: () => agent.done, cancel: () => agent.cancel() };
  let report: Report;
  if (f.json === true) {
    report = await migration;
    clearInterval(poll);
    snapshot();
    out(JSON.stringify(report, null, 2));
  } else if (tty) {
    await runTui(view);
    report = await migration;
    for (const l of logLines.splice(0)) out(`· ${l}`);
  } else {
    await runPlain(view, { write: out });
    report = await migration;
  }
  if (samples !== null && f.report !== undefined) {
    writeHtmlReport(f.report, title, [samples.recording("real", report, null)]);
    if (f.json !== true) out(`HTML report: ${f.report}`);
  }
  return report;
}
