/**
 * A trace workload migrated for real on loopback (post-copy and pre-copy):
 * both guests replay the trace, and the destination must end with the
 * memory hash of an unmigrated run. Needs userfaultfd; pass/fail never
 * depends on timing.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { parseWorkload } from "../src/workload/parse.js";
import { userfaultfdUnavailable } from "./support/uffd.js";
import { sampleWindows, writeTrace } from "./support/traces.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping real trace migrations: userfaultfd is unavailable here: ${unavailable}`);

const dir = mkdtempSync(join(tmpdir(), "ppsim-real-trace-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe.skipIf(unavailable !== null)("real migration of a trace workload", () => {
  for (const mode of ["postcopy", "precopy"] as const) {
    it(`${mode}: completes and verifies`, async () => {
      writeTrace(join(dir, "sample.trace.gz"), sampleWindows());
      const workload = parseWorkload(
        { ppsim_workload: 2, name: "trace", memory: "16MiB", vcpus: 2, warmup_ms: 50, phases: [{ kind: "trace", trace: "sample.trace.gz", copies: "fill", speed: 200 }] },
        "trace.json",
        dir,
      );
      const log: string[] = [];
      const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
      cleanups.push(() => dest.close());
      // A fixed, short run (the guest may finish before the migration does: the hash still has to match).
      const src = await SourceAgent.start({ workload, seed: 4, steps: 20_000, peer: { host: "127.0.0.1", port: dest.port }, mode, log: (l) => log.push(`[src] ${l}`) });
      cleanups.push(() => src.close());
      const r = await src.migrate();
      expect(r.outcome, log.join("\n")).toBe("completed");
      expect(r.verified, log.join("\n")).toBe(true);
      expect(r.mode).toBe(mode);
    });
  }
});
