/**
 * A destination that dies (SIGKILL of its agent; its guest exits with it):
 * during pre-copy the source guest runs on, and the same source agent
 * migrates the same guest to another destination, which verifies; during
 * post-copy without a standby copy the source says plainly that the VM is
 * lost, and why. Needs userfaultfd (skips, saying why, without it).
 */
import { describe, expect, it } from "vitest";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { loadWorkload } from "../src/workload/parse.js";
import { spawnDestination, until } from "./support/agent-process.js";
import { CutProxy } from "./support/cut-proxy.js";
import { cleanupAfterEach, shortSteps } from "./support/short-run.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping real destination deaths: userfaultfd is unavailable here: ${unavailable}`);

const cleanups = cleanupAfterEach();

const FAST_RECONNECT = { attempts: 3, totalMs: 1000, connectTimeoutMs: 200, firstDelayMs: 20, maxDelayMs: 100 };

describe.skipIf(unavailable !== null)("a destination that dies", () => {
  it("in pre-copy: the source guest runs on, and the same agent migrates it to another destination", async () => {
    const doomed = await spawnDestination();
    cleanups.push(async () => void doomed.child.kill("SIGKILL"));
    // The destination dies 1 MiB into the first pass (a proxy counts the bytes). The source hands a
    // round to its data plane faster than the bytes cross the proxy, so without a cap it may have
    // paused its guest for the switchover before 1 MiB got through; at 50 MB/s the 32 MiB first
    // pass takes ~0.6 s and the cut lands in it.
    const proxy = new CutProxy(doomed.port, {
      onSourceBytes: (n) => {
        if (n < 2 ** 20) return false;
        doomed.child.kill("SIGKILL");
        return true;
      },
    });
    await proxy.listen();
    cleanups.push(() => proxy.close());
    const log: string[] = [];
    const src = await SourceAgent.start({
      workload: scaleWorkload(loadWorkload("examples/web-server.json"), 32 * 2 ** 20),
      steps: shortSteps("examples/web-server.json", 32 * 2 ** 20),
      mode: "precopy",
      seed: 5,
      peer: { host: "127.0.0.1", port: proxy.port },
      options: { bandwidthCap: 50e6 },
      reconnect: FAST_RECONNECT,
      log: (l) => log.push(`[src] ${l}`),
    });
    cleanups.push(() => src.close());
    const r1 = await src.migrate();
    expect(r1.outcome).toBe("failed");
    expect(r1.reason).toMatch(/before switchover; the source guest keeps running/);
    expect(await doomed.exited).not.toBe(0);
    expect(src.guestRunsHere).toBe(true);

    const next = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
    cleanups.push(() => next.close());
    const r2 = await src.migrate({ host: "127.0.0.1", port: next.port });
    const why = `${r2.outcome}: ${r2.reason}\n${log.join("\n")}`;
    expect(r2.outcome, why).toBe("completed");
    expect(r2.verified, why).toBe(true);
    expect(r2.peer).toBe(`127.0.0.1:${next.port}`);
  });

  it("in post-copy without a standby copy: the source says the VM is lost, and why", async () => {
    const doomed = await spawnDestination();
    cleanups.push(async () => void doomed.child.kill("SIGKILL"));
    const src = await SourceAgent.start({
      workload: scaleWorkload(loadWorkload("examples/web-server.json"), 64 * 2 ** 20),
      steps: shortSteps("examples/web-server.json", 64 * 2 ** 20),
      mode: "postcopy",
      seed: 5,
      peer: { host: "127.0.0.1", port: doomed.port },
      options: { bandwidthCap: 20e6, reconnectTimeoutMs: 1500 },
      reconnect: FAST_RECONNECT,
    });
    cleanups.push(() => src.close());
    const run = src.migrate();
    await until(() => src.snapshot().phase === "postcopy" && src.snapshot().channelBytes.bulk > 4 * 2 ** 20, "post-copy under way", () => src.done);
    doomed.child.kill("SIGKILL");
    const r = await run;
    expect(r.outcome).toBe("failed");
    expect(r.reason).toMatch(/the VM is lost: the destination guest has run since the switchover.*\d+ pages not yet sent.*no standby copy/);
    expect(src.guestRunsHere).toBe(false);
  });
});
