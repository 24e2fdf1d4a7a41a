/**
 * Tasks on the native guest: more task threads than vCPU slots; with async
 * faults a task about to touch a missing page gives up its slot. Migrated for
 * real on loopback with async faults on and off, verified by the memory hash
 * (each task writes only its own pages, so the hash does not depend on how
 * the tasks interleaved). Skips, saying why, without userfaultfd.
 */
import { afterEach, describe, expect, it } from "vitest";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { toGuestConfig } from "../src/workload/guest-config.js";
import { parseWorkload } from "../src/workload/parse.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping real migrations with tasks: userfaultfd is unavailable here: ${unavailable}`);

const phase = (kind: string) => ({ steps: 50000, compute_ns: 3000, write_share: 0.3, pattern: { kind } });
const workload = (asyncFaults: boolean) =>
  parseWorkload({
    ppsim_workload: 1,
    name: "tasks-real",
    memory: "32MiB",
    vcpus: 2,
    zero_share: 0.2,
    warmup_ms: 200,
    phases: [phase("uniform")],
    tasks: { async_faults: asyncFaults, slice_steps: 100, extra: [{ phases: [phase("sequential")] }, { phases: [phase("hotcold")] }] },
  });

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("tasks on the native guest", () => {
  it("get a tasks line and their phases tagged task=K in the guest config", () => {
    const lines = toGuestConfig(workload(true), 1).split("\n");
    expect(lines).toContain("tasks 3 1 100");
    expect(lines.filter((l) => l.startsWith("phase ") && l.endsWith(" task=1"))).toHaveLength(1);
    expect(lines.filter((l) => l.startsWith("phase ") && l.endsWith(" task=2"))).toHaveLength(1);
    expect(toGuestConfig(workload(false), 1).split("\n")).toContain("tasks 3 0 100");
  });

  for (const asyncFaults of [true, false]) {
    it.skipIf(unavailable !== null)(`post-copy with async faults ${asyncFaults ? "on" : "off"}: completes and verifies`, async () => {
      const log: string[] = [];
      const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
      cleanups.push(() => dest.close());
      // About half a second of each task's work after the start: longer than this small migration.
      const src = await SourceAgent.start({ workload: workload(asyncFaults), seed: 5, mode: "postcopy", steps: 60_000, peer: { host: "127.0.0.1", port: dest.port }, log: (l) => log.push(`[src] ${l}`) });
      cleanups.push(() => src.close());
      const r = await src.migrate();
      expect([r.outcome, r.verified], `${String(r.reason)}\n${log.join("\n")}`).toEqual(["completed", true]);
    });
  }
});
