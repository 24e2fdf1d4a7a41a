/**
 * Install mode "continue" between real agents (docs/native.md "Install
 * modes"): the destination's guest runs registered MISSING|MINOR, its bulk
 * receivers write pages into the page cache and map them with
 * UFFDIO_CONTINUE, and every page is claimed by the one path that installs
 * it. A memory scan whose first vCPU sweeps from page 0 while the source's
 * background pages also go out from page 0 (linear order, two bulk
 * connections) faults on pages that are queued on a bulk connection too, so
 * that both copies of a page may be in flight; whether they meet, and in
 * which order, is the machine's (the deterministic both-orders check is
 * test/native-minor.test.ts). The destination's memory hash must be an
 * unmigrated run's.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { chooseSteps, scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { loadWorkload } from "../src/workload/parse.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping real install mode continue: userfaultfd is unavailable here: ${unavailable}`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(unavailable !== null)("real post-copy, install mode continue", () => {
  it.each(["postcopy", "hybrid"] as const)("%s: faults on pages queued on bulk too; completes and verifies", async (mode) => {
    const log: string[] = [];
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { once: true, install: "continue", log: (l) => log.push(`[dst] ${l}`) });
    cleanups.push(() => dest.close());
    const workload = scaleWorkload(loadWorkload("examples/memory-scan.json"), 64 * 2 ** 20);
    const src = await SourceAgent.start({
      workload,
      steps: Math.ceil(chooseSteps(workload) / 4),
      mode,
      seed: 3,
      peer: { host: "127.0.0.1", port: dest.port },
      connections: 2,
      options: { backgroundOrder: "linear" },
      log: (l) => log.push(`[src] ${l}`),
    });
    cleanups.push(() => src.close());
    const r = await src.migrate();
    const why = `${r.outcome}: ${r.reason}\n${log.join("\n")}`;
    expect(log.some((l) => l.includes("install mode continue")), why).toBe(true);
    expect(r.outcome, why).toBe("completed");
    expect(r.verified, why).toBe(true);
    if (mode === "postcopy") expect(r.demand_faults, why).toBeGreaterThan(0);
  });
});

/**
 * Memory populated ahead (`--prealloc`, src/real/dest-prealloc.ts): the
 * destination's guest runs over a memfd allocated, zeroed and mapped in the
 * agent before the source connected; every page not here yet faults MINOR, a
 * zero page is mapped unwritten, data goes through the agent's alias. Hybrid
 * punches the switchover's stale pages into holes of that memory.
 */
describe.skipIf(unavailable !== null)("real migration into memory populated ahead", () => {
  const MEM = 64 * 2 ** 20;
  async function run(mode: "postcopy" | "precopy" | "hybrid", prealloc: number) {
    const log: string[] = [];
    // A --max-memory of exactly the guest: the memory populated for it is the guest's, not more.
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { once: true, prealloc, maxMemoryBytes: prealloc === MEM ? MEM : MEM + prealloc, log: (l) => log.push(`[dst] ${l}`) });
    cleanups.push(() => dest.close());
    const workload = scaleWorkload(loadWorkload("examples/web-server.json"), MEM);
    // Hybrid: one round and a downtime limit it cannot meet, so that it goes post-copy with stale pages.
    const options = mode === "hybrid" ? { hybridRounds: 1, downtimeLimitMs: 0.01 } : {};
    const src = await SourceAgent.start({ workload, steps: Math.ceil(chooseSteps(workload) / 4), mode, seed: 5, peer: { host: "127.0.0.1", port: dest.port }, connections: 2, options, log: (l) => log.push(`[src] ${l}`) });
    cleanups.push(() => src.close());
    const r = await src.migrate();
    return { r, log, why: `${r.outcome}: ${r.reason}\n${log.join("\n")}` };
  }

  it.each(["postcopy", "precopy", "hybrid"] as const)("%s: completes and verifies", async (mode) => {
    const { r, log, why } = await run(mode, MEM);
    expect(log.some((l) => l.includes("guest memory populated ahead (64 MiB)")), why).toBe(true);
    expect(r.outcome, why).toBe("completed");
    expect(r.verified, why).toBe(true);
    if (mode === "postcopy") expect(r.demand_faults, why).toBeGreaterThan(0);
    // Hybrid's stale pages are punched into holes of the populated memory and installed again.
    if (mode === "hybrid") expect(log.some((l) => /switchover: [1-9]\d* stale pages dropped/.test(l)), why).toBe(true);
  });

  it("a guest of another size gets fresh memory, and says why", async () => {
    const { r, log, why } = await run("postcopy", MEM / 2);
    expect(log.some((l) => l.includes(`memory populated ahead not used: the guest has ${MEM} bytes, the memory populated ahead ${MEM / 2}`)), why).toBe(true);
    expect(r.verified, why).toBe(true);
  });
});

