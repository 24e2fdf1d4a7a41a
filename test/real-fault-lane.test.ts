/**
 * The fault lane (issue 9) in real migrations: a real source agent migrates a
 * 32 MiB web-server guest to a real destination agent, post-copy and hybrid,
 * with its demand faults requested and answered by the lane's native
 * threads; each run verifies (the destination's memory hash is an unmigrated
 * run's). Then the lane alone is broken mid post-copy, by a proxy that cuts
 * only that connection: the link goes down as a whole, the source reconnects,
 * opens a new lane and the migration verifies. Nothing here depends on timing.
 */
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import type { Mode } from "../src/engine/messages.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { chooseSteps, scaleWorkload } from "../src/real/plan.js";
import { encodePreamble, parsePreamble } from "../src/real/preamble.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { loadWorkload } from "../src/workload/parse.js";
import { userfaultfdUnavailable } from "./support/uffd.js";

const unavailable = userfaultfdUnavailable();
const MEM = 32 * 2 ** 20;
const FILE = "examples/web-server.json";
if (unavailable !== null) console.log(`skipping real fault lane migrations: userfaultfd is unavailable here: ${unavailable}`);

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Forwards every connection; the fault lane's (its preamble's channel byte is 2) is cut once, after `cutAfter` bytes from the source. */
class LaneCutProxy {
  lanes = 0;
  cuts = 0;
  port = 0;
  private server: Server | null = null;
  private readonly open = new Set<Socket>();

  constructor(
    private readonly destPort: number,
    private readonly cutAfter: number,
  ) {}

  async listen(): Promise<void> {
    this.server = createServer((c) => this.onClient(c));
    await new Promise<void>((r) => this.server!.listen(0, "127.0.0.1", r));
    const a = this.server.address();
    this.port = typeof a === "object" && a !== null ? a.port : 0;
  }

  async close(): Promise<void> {
    for (const s of this.open) s.destroy();
    await new Promise<void>((r) => (this.server === null ? r() : this.server.close(() => r())));
  }

  private onClient(client: Socket): void {
    const dest = connect(this.destPort, "127.0.0.1");
    this.open.add(client).add(dest);
    const drop = (): void => {
      client.destroy();
      dest.destroy();
    };
    client.on("error", drop).on("close", drop);
    dest.on("error", drop).on("close", drop);
    let first = true;
    let lane = false;
    let bytes = 0;
    client.on("data", (chunk: Buffer) => {
      if (first) {
        first = false;
        lane = chunk.length > 6 && chunk.readUInt8(6) === 2;
        if (lane) this.lanes++;
      }
      dest.write(chunk);
      if (!lane) return;
      bytes += chunk.length;
      if (this.cuts === 0 && bytes > this.cutAfter) {
        this.cuts++;
        drop();
      }
    });
    dest.on("data", (chunk: Buffer) => client.write(chunk));
  }
}

async function migrate(mode: Mode, port: number, log: string[]): Promise<{ r: Awaited<ReturnType<SourceAgent["migrate"]>>; src: SourceAgent }> {
  const workload = scaleWorkload(loadWorkload(FILE), MEM);
  const src = await SourceAgent.start({
    workload,
    // Enough steps that the guest still runs after the switchover (a guest done before it faults on nothing).
    steps: Math.ceil(chooseSteps(workload) / 3),
    mode,
    seed: 5,
    // The background capped: the guest surely faults on pages it has not got yet, whatever the machine's speed.
    options: { bandwidthCap: 32 * 2 ** 20 },
    peer: { host: "127.0.0.1", port },
    log: (l) => log.push(`[src] ${l}`),
  });
  cleanups.push(() => src.close());
  return { r: await src.migrate(), src };
}

describe("the fault lane's preamble", () => {
  it("names the lane (channel byte 2), read as urgent with lane set, stream 0 only", () => {
    const session = "cd".repeat(16);
    const b = encodePreamble({ channel: "urgent", lane: true, session, epoch: 3, info: "" });
    expect(b.readUInt8(6)).toBe(2);
    expect(parsePreamble(b)?.preamble).toMatchObject({ channel: "urgent", lane: true, epoch: 3, stream: 0 });
    expect(parsePreamble(encodePreamble({ channel: "urgent", session, epoch: 0, info: "" }))?.preamble.lane).toBeUndefined();
    b.writeUInt8(1, 7);
    expect(() => parsePreamble(b)).toThrow(/fault lane stream 1/);
  });
});

describe.skipIf(unavailable !== null)("real migrations over the fault lane", () => {
  it.each(["postcopy", "hybrid"] as const)("%s: demand faults over the lane, verified", async (mode) => {
    const log: string[] = [];
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
    cleanups.push(() => dest.close());
    const { r, src } = await migrate(mode, dest.port, log);
    await src.close(); // the lane closes last, and logs what it served
    const why = `${r.outcome}: ${r.reason}\n${log.join("\n")}`;
    expect(r.outcome, why).toBe("completed");
    expect(r.verified, why).toBe(true);
    expect(log.some((l) => l.includes("fault lane open")), why).toBe(true);
    if (mode === "postcopy") {
      // The lane asked for and answered demand faults (its source end says how many).
      expect(r.demand_faults, why).toBeGreaterThan(0);
      const served = log.map((l) => /fault lane: (\d+) requests, (\d+) served/.exec(l)).find((m) => m !== null);
      expect(served, why).toBeDefined();
      expect(Number(served![2]), why).toBeGreaterThan(0);
    }
  });

  it("a broken lane takes the link down; the source reconnects with a new lane and the migration verifies", async () => {
    const log: string[] = [];
    const dest = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => log.push(`[dst] ${l}`) });
    cleanups.push(() => dest.close());
    const proxy = new LaneCutProxy(dest.port, 8 * 1024);
    await proxy.listen();
    cleanups.push(() => proxy.close());
    const { r } = await migrate("postcopy", proxy.port, log);
    const why = `${r.outcome}: ${r.reason}\n${log.join("\n")}`;
    expect(proxy.cuts, why).toBe(1);
    expect(proxy.lanes, why).toBeGreaterThanOrEqual(2);
    expect(r.outcome, why).toBe("completed");
    expect(r.recoveries, why).toBeGreaterThanOrEqual(1);
    expect(r.verified, why).toBe(true);
  });
});
