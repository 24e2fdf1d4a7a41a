/**
 * A small real post-copy (64 MiB, loopback, the destination agent a process
 * of its own as on another host) reports where each host's CPU went: the
 * source's account and the destination's (sent in its final report, checked
 * by the source) hold their agent's loop, the data plane's named threads and
 * their guest's vCPUs, at every mark, with figures that never go down.
 * Needs userfaultfd (skips, saying why, without it); nothing depends on timing.
 */
import { describe, expect, it } from "vitest";
import type { CpuAccount, Report } from "../src/engine/report.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { cpuBetween } from "../src/real/thread-cpu-summary.js";
import { loadWorkload } from "../src/workload/parse.js";
import { spawnDestination } from "./support/agent-process.js";
import { cleanupAfterEach, shortSteps } from "./support/short-run.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping the real CPU account: userfaultfd is unavailable here: ${unavailable}`);

const cleanups = cleanupAfterEach();
const MEM = 64 * 2 ** 20;
const FILE = "examples/web-server.json";

function expectAccount(a: CpuAccount | null | undefined, marks: string[], agent: string, guest: string, threads: { comm: RegExp; role: string }[], why: string): void {
  expect(a, why).toBeTruthy();
  if (a == null) return;
  expect(a.marks).toEqual(marks);
  for (let i = 1; i < a.at_us.length; i++) expect(a.at_us[i]).toBeGreaterThanOrEqual(a.at_us[i - 1]);
  const loops = a.threads.filter((t) => t.process === agent && t.role === "loop");
  expect(loops, why).toHaveLength(1);
  expect(loops[0].tid).toBe(loops[0].pid);
  for (const { comm, role } of threads) {
    const found = a.threads.filter((t) => comm.test(t.comm));
    expect(found.length, `${String(comm)} in ${a.threads.map((t) => `${t.process}/${t.comm}`).join(", ")}`).toBeGreaterThan(0);
    for (const t of found) expect(t.role).toBe(role);
  }
  const vcpus = a.threads.filter((t) => t.process === guest && t.role === "vcpu");
  expect(vcpus.length, why).toBeGreaterThan(0);
  for (const t of vcpus) expect(t.comm).toMatch(/^ppsim-vcpu\d+$/);
  for (const t of a.threads) {
    expect(t.cpu_ms).toHaveLength(marks.length);
    const known = t.cpu_ms.filter((x): x is number => x !== null);
    for (let i = 1; i < known.length; i++) expect(known[i]).toBeGreaterThanOrEqual(known[i - 1]);
  }
  // The guest's vCPUs ran: some CPU from the first mark to the last.
  const ran = cpuBetween(a, marks[0], marks[marks.length - 1])?.find((g) => g.process === guest && g.role === "vcpu");
  expect(ran?.cpu_ms ?? 0, why).toBeGreaterThan(0);
}

describe.skipIf(unavailable !== null)("the per-thread CPU account of a real post-copy", () => {
  it("has both agents' loops, their data plane's threads and both guests' vCPUs", async () => {
    const dst = await spawnDestination();
    cleanups.push(async () => void dst.child.kill("SIGKILL"));
    const src = await SourceAgent.start({
      workload: scaleWorkload(loadWorkload(FILE), MEM),
      steps: shortSteps(FILE, MEM),
      mode: "postcopy",
      seed: 3,
      peer: { host: "127.0.0.1", port: dst.port },
      connections: 2,
    });
    cleanups.push(() => src.close());
    const r: Report = await src.migrate();
    const why = `${r.outcome}: ${r.reason}\n${dst.lines.join("\n")}`;
    expect(r.outcome, why).toBe("completed");
    expect(r.verified, why).toBe(true);
    const c = r.real_cpu_threads;
    expectAccount(c?.source, ["start", "pause", "end"], "source agent", "source guest", [{ comm: /^ppsim-bulk-tx$/, role: "bulk" }], why);
    expectAccount(c?.destination, ["start", "resumed", "end"], "destination agent", "destination guest", [
      { comm: /^ppsim-bulk-rx$/, role: "bulk" },
      { comm: /^ppsim-faults$/, role: "fault reader" },
    ], why);
    // Two hosts' processes: the destination's agent is not this one.
    const destLoop = c?.destination?.threads.find((t) => t.role === "loop");
    expect(destLoop?.pid).not.toBe(process.pid);
    expect(c?.source.threads.find((t) => t.role === "loop")?.pid).toBe(process.pid);
  });
});
