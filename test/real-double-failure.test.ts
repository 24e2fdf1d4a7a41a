/**
 * Double failures for real (issue 16): a real source agent migrates a
 * 64 MiB web-server guest in post-copy to a real destination agent through
 * a proxy that cuts every connection three times — mid post-copy, then while
 * the destination's recover is on its way (the recovery handshake), then
 * 2 MiB into the source's resend. The migration must complete and the
 * destination's memory hash like an unmigrated run's.
 */
import { describe, expect, it } from "vitest";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { loadWorkload } from "../src/workload/parse.js";
import { CutProxy } from "./support/cut-proxy.js";
import { cleanupAfterEach, shortSteps } from "./support/short-run.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping real double failures: userfaultfd is unavailable here: ${unavailable}`);

const cleanups = cleanupAfterEach();

describe.skipIf(unavailable !== null)("real double failures", () => {
  it("a link cut mid post-copy, again during the recovery handshake and again during the resend recovers and verifies", async () => {
    const log: string[] = [];
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
    cleanups.push(() => dest.close());
    let resumed = false;
    const proxy = new CutProxy(dest.port, {
      onDestFrame: (m, p) => {
        if (m.type === "resumed") resumed = true;
        if (m.type === "recover" && p.cuts === 1) {
          log.push("[proxy] cut 2: the recover is on its way");
          return true;
        }
        return false;
      },
      onSourceBytes: (n, p) => {
        if (p.cuts === 0 && resumed && n > 8 * 2 ** 20) {
          log.push("[proxy] cut 1: mid post-copy");
          return true;
        }
        if (p.cuts === 2 && p.destFrames.includes("recover") && n > 2 * 2 ** 20) {
          log.push("[proxy] cut 3: during the resend");
          return true;
        }
        return false;
      },
    });
    await proxy.listen();
    cleanups.push(() => proxy.close());
    const src = await SourceAgent.start({
      workload: scaleWorkload(loadWorkload("examples/web-server.json"), 64 * 2 ** 20),
      steps: shortSteps("examples/web-server.json", 64 * 2 ** 20),
      mode: "postcopy",
      seed: 11,
      peer: { host: "127.0.0.1", port: proxy.port },
      log: (l) => log.push(`[src] ${l}`),
    });
    cleanups.push(() => src.close());
    const r = await src.migrate();
    const why = `${r.outcome}: ${r.reason}\n${log.join("\n")}`;
    expect(proxy.cuts, why).toBe(3);
    expect(r.outcome, why).toBe("completed");
    expect(r.verified, why).toBe(true);
    expect(r.recoveries, why).toBe(2);
  });
});
