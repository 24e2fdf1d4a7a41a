/**
 * Real migrations on loopback with each of the source's send ways other than
 * the default (native/src/bulk_send_ways.*; the default, DEFAULT_SEND_WAY, is
 * what every other real test runs): a hybrid migration must complete and
 * verify (the destination's memory hashes like an unmigrated run). Hybrid
 * has both of a way's hazards: pre-copy rounds read pages the guest is still
 * writing (a page queued and then written must be sent again, and is), and
 * post-copy's pages punched once the destination holds them. test/send-ways
 * checks each way's frames byte for byte against preadv's. A small
 * guest, a quarter of the short steps (the tests stay ~1 s each): pass/fail
 * never depends on timing.
 */
import { describe, expect, it } from "vitest";
import type { Mode } from "../src/engine/messages.js";
import { DEFAULT_SEND_WAY, SEND_WAYS } from "../src/real/dataplane.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { loadWorkload } from "../src/workload/parse.js";
import { cleanupAfterEach, shortSteps } from "./support/short-run.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
const MEM = 32 * 1024 * 1024;
const FILE = "examples/web-server.json";
const cleanups = cleanupAfterEach();

describe.skipIf(unavailable !== null)("real migrations with each send way", () => {
  for (const way of SEND_WAYS.filter((w) => w !== DEFAULT_SEND_WAY))
    for (const mode of ["hybrid"] as Mode[])
      it(`${way}, ${mode}: completes and verifies`, async () => {
        process.env.PPSIM_SEND_WAY = way; // the source agent is in this process: its bulk senders read it
        cleanups.push(async () => void delete process.env.PPSIM_SEND_WAY);
        const log: string[] = [];
        const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
        cleanups.push(() => dest.close());
        const src = await SourceAgent.start({ workload: scaleWorkload(loadWorkload(FILE), MEM), seed: 3, steps: Math.ceil(shortSteps(FILE, MEM) / 4), mode, peer: { host: "127.0.0.1", port: dest.port }, log: (l) => log.push(`[src] ${l}`) });
        cleanups.push(() => src.close());
        const r = await src.migrate();
        const why = `${r.outcome}: ${String(r.reason)}\n${log.join("\n")}`;
        expect(r.outcome, why).toBe("completed");
        expect(r.verified, why).toBe(true);
        expect(r.rounds.length, why).toBeGreaterThanOrEqual(1);
        expect(r.switchover_reason, why).not.toBe("none");
        expect(log.join("\n")).toMatch(/\[src\] bulk pages: native data plane/);
      });
});
