/**
 * Post-copy over several bulk connections (issue 9): a real source agent
 * migrates a 64 MiB web-server guest to a real destination agent with three
 * bulk connections, through a proxy that cuts every connection once, mid
 * post-copy, after the extra connections carried pages. The recovery covers
 * all of them (the destination's received bitmap, exact past the
 * switchover): the migration completes and the destination's memory hash is
 * an unmigrated run's.
 */
import { afterEach, describe, expect, it } from "vitest";
import { FrameDecoder } from "../src/engine/frame-decoder.js";
import type { Message } from "../src/engine/messages.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { chooseSteps, scaleWorkload } from "../src/real/plan.js";
import { encodePreamble, MAX_BULK_CONNECTIONS, parsePreamble } from "../src/real/preamble.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { connectChannel } from "../src/real/transport.js";
import { loadWorkload } from "../src/workload/parse.js";
import { CutProxy } from "./support/cut-proxy.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
const MEM = 64 * 2 ** 20;
const FILE = "examples/web-server.json";
if (unavailable !== null) console.log(`skipping real multi-connection post-copy: userfaultfd is unavailable here: ${unavailable}`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("extra bulk connections, refused where they do not belong", () => {
  const session = "ab".repeat(16);
  it("the preamble carries a bulk connection's index, bounded, and none for urgent", () => {
    const p = parsePreamble(encodePreamble({ channel: "bulk", stream: 3, session, epoch: 2, info: "" }));
    expect(p?.preamble).toMatchObject({ channel: "bulk", stream: 3, epoch: 2 });
    expect(() => parsePreamble(encodePreamble({ channel: "bulk", stream: MAX_BULK_CONNECTIONS, session, epoch: 0, info: "" }))).toThrow(/bulk connection 8, at most 8/);
    expect(() => parsePreamble(encodePreamble({ channel: "urgent", stream: 1, session, epoch: 0, info: "" }))).toThrow(/urgent stream 1/);
  });

  it("a destination answers an extra bulk connection for a session that has not formed with an error frame", async () => {
    const log: string[] = [];
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(l) });
    cleanups.push(() => dest.close());
    const socket = await connectChannel("127.0.0.1", dest.port, { channel: "bulk", stream: 1, session, epoch: 0, info: "" }, 3000);
    const d = new FrameDecoder(0);
    const got = await new Promise<Message<Uint8Array>[]>((resolve) => {
      const all: Message<Uint8Array>[] = [];
      socket.on("data", (b: Buffer) => all.push(...d.push(b)));
      socket.on("close", () => resolve(all));
    });
    expect(got.map((m) => m.type)).toEqual(["error"]);
    expect(got[0].type === "error" && got[0].reason).toMatch(/extra bulk connection for a session that has not formed/);
    expect(dest.load.candidates).toBe(0);
  });
});

describe.skipIf(unavailable !== null)("real post-copy over several bulk connections", () => {
  it("a cut mid post-copy with three bulk connections recovers every connection and verifies", async () => {
    const log: string[] = [];
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
    cleanups.push(() => dest.close());
    let resumed = false;
    let acceptedAtCut = 0;
    const proxy = new CutProxy(dest.port, {
      onDestFrame: (m) => {
        if (m.type === "resumed") resumed = true;
        return false;
      },
      onSourceBytes: (n, p) => {
        // Urgent, bulk 0, the fault lane and the two extra bulk connections are open: cut once they carried a few MiB.
        if (p.cuts === 0 && resumed && p.accepted >= 5 && n > 12 * 2 ** 20) {
          acceptedAtCut = p.accepted;
          log.push("[proxy] cut mid post-copy");
          return true;
        }
        return false;
      },
    });
    await proxy.listen();
    cleanups.push(() => proxy.close());
    const workload = scaleWorkload(loadWorkload(FILE), MEM);
    const src = await SourceAgent.start({
      workload,
      steps: Math.ceil(chooseSteps(workload) / 3),
      mode: "postcopy",
      seed: 5,
      peer: { host: "127.0.0.1", port: proxy.port },
      connections: 3,
      log: (l) => log.push(`[src] ${l}`),
    });
    cleanups.push(() => src.close());
    const r = await src.migrate();
    const why = `${r.outcome}: ${r.reason}\n${log.join("\n")}`;
    expect(acceptedAtCut, why).toBe(5);
    expect(proxy.cuts, why).toBe(1);
    // The new epoch opened its extra connections (and its fault lane) again.
    expect(proxy.accepted, why).toBeGreaterThan(acceptedAtCut + 3);
    expect(log.some((l) => l.includes("pages over several bulk connections")), why).toBe(true);
    expect(r.outcome, why).toBe("completed");
    expect(r.recoveries, why).toBe(1);
    expect(r.verified, why).toBe(true);
  });
});
