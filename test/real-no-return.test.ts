/**
 * The point of no return, for real: a real source agent and its guest meet a
 * destination that fails after the source paused but before the destination
 * guest ran — its guest "cannot start" when the switchover arrives, or the
 * connections are cut before the switchover is sent. The source must resume
 * its own guest (it runs on: its steps keep growing) and report the
 * migration failed, not lost. Needs userfaultfd (skips, saying why, without it).
 */
import { afterEach, describe, expect, it } from "vitest";
import type { Mode } from "../src/engine/messages.js";
import { schedPolicy, switchoverWindows } from "../src/real/loop-priority.js";
import { totalSteps } from "../src/real/progress.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { sleep } from "../src/real/clock.js";
import { loadWorkload } from "../src/workload/parse.js";
import { FakeDestination, type Script } from "./support/fake-destination.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping the real point of no return: userfaultfd is unavailable here: ${unavailable}`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function failAt(script: Script, mode: Mode) {
  const fake = await FakeDestination.listen(script);
  cleanups.push(() => fake.close());
  const log: string[] = [];
  const agent = await SourceAgent.start({
    workload: scaleWorkload(loadWorkload("examples/web-server.json"), 32 * 1024 * 1024),
    mode,
    seed: 3,
    steps: 2 ** 40, // never finishes while the test watches
    peer: { host: "127.0.0.1", port: fake.port },
    reconnect: { attempts: 0, totalMs: 0, connectTimeoutMs: 100, firstDelayMs: 10, maxDelayMs: 10 },
    log: (l) => log.push(l),
  });
  cleanups.push(() => agent.close());
  const report = await agent.migrate();
  // The switchover's window (the default, PPSIM_SWITCHOVER_RR; opened at the pause) closed on this failure too:
  // this loop is back in the normal class with the migration's end.
  expect(switchoverWindows().open).toBe(0);
  expect(schedPolicy(0).policy).toBe(0);
  return { report, agent, fake, log };
}

/** Whether the guest runs: its steps grow (waits as long as it takes; never a timing threshold). */
async function runs(agent: SourceAgent): Promise<boolean> {
  const first = await agent.guest.progress();
  for (;;) {
    await sleep(20);
    const p = await agent.guest.progress();
    if (p.state !== "running") return false;
    if (totalSteps(p) > totalSteps(first)) return true;
  }
}

describe.skipIf(unavailable !== null)("real source agent: the point of no return", () => {
  it("a destination whose guest cannot start hands the VM back: the source guest resumes and runs on", async () => {
    const { report, agent, fake } = await failAt({ at: "switchover", act: "resumeFailed" }, "postcopy");
    expect(fake.seen).toContain("switchover");
    expect(report.outcome).toBe("failed");
    expect(report.reason).toMatch(/could not start its guest.*the source guest resumed and keeps running \(failed, not lost\)/);
    expect(await runs(agent)).toBe(true);
  });

  it("connections cut while the source guest pauses, before the switchover went out: the source guest resumes and runs on", async () => {
    const { report, agent } = await failAt({ at: "hello", act: "ackThenCut" }, "postcopy");
    expect(report.outcome).toBe("failed");
    expect(report.reason).toMatch(/link lost before the switchover reached the destination.*\(failed, not lost\)/);
    expect(await runs(agent)).toBe(true);
  });
});
