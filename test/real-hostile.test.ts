/**
 * A destination agent against a hostile source, each attack of issue 15
 * scaled down: it is refused (a named reason in the log, an error frame when
 * the peer can still read one), the agent's memory stays bounded, no guest is
 * spawned for a peer that did not pass admission, and a legitimate migration
 * completes and verifies on the same agent right after. Pass/fail never
 * depends on timing: deadlines are short so the test is quick, and each
 * check waits for what it must see.
 */
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import { ErrorCode, MessageTag } from "../src/engine/messages.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { sanitize, UNSAFE_CHARS } from "../src/real/peer-text.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { connectChannel } from "../src/real/transport.js";
import { loadWorkload } from "../src/workload/parse.js";
import { flood, hello, infoFor, memoryNow, openPair, PS, sessionId, watch } from "./support/hostile-peer.js";
import { userfaultfdUnavailable } from "./support/uffd.js";
import { pagesMsg } from "./support/pages.js";

const unavailable = userfaultfdUnavailable();
if (unavailable !== null) console.log(`skipping the hostile-peer suite: userfaultfd is unavailable here: ${unavailable}`);

const MiB = 1024 * 1024;
const GUEST = 16 * MiB;
/** What the agent may grow by while 64 MiB of attack goes in: an order below it. */
const MEMORY_SLACK = 24 * MiB;

describe.skipIf(unavailable !== null)("a destination agent against a hostile source", () => {
  let agent: DestinationAgent;
  const log: string[] = [];
  /** The first log line matching, once there (a generous bound only turns a hang into a readable failure). */
  const logged = async (re: RegExp): Promise<string> => {
    for (let waited = 0; ; waited += 10) {
      const line = log.find((l) => re.test(l));
      if (line !== undefined) return line;
      if (waited > 60_000) throw new Error(`no log line matches ${String(re)}:\n${log.join("\n")}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const settled = async (): Promise<void> => {
    while (agent.load.sessions > 0 || agent.load.candidates > 0) await new Promise((r) => setTimeout(r, 10));
  };
  let n = 0;
  const fresh = () => sessionId(++n);

  beforeAll(async () => {
    agent = await DestinationAgent.listen("127.0.0.1", 0, {
      log: (l) => log.push(l),
      maxMemoryBytes: 64 * MiB,
      maxSessions: 1,
      setupTimeoutMs: 1500,
      preambleTimeoutMs: 400,
      stallMs: 300,
      reconnectWaitMs: 300,
    });
  });
  afterAll(() => agent.close());

  it("a pages frame beyond what the layout needs is refused from its header, before its payload is buffered", async () => {
    const { urgent, bulk } = await openPair(agent.port, fresh(), infoFor(GUEST));
    const b = watch(bulk);
    bulk.write(hello(GUEST / PS));
    await b.first("helloAck");
    // The attack: one legal-looking 256 MiB pages frame of zero-page entries.
    const header = Buffer.alloc(12);
    header.writeUInt16LE(0x5050, 0);
    header.writeUInt8(MessageTag.Pages, 2);
    header.writeUInt32LE(256 * MiB, 4);
    header.writeUInt32LE((256 * MiB - 4) / 5, 8);
    const before = memoryNow();
    bulk.write(header);
    void flood(bulk, Buffer.alloc(MiB), 64 * MiB);
    await b.closed;
    expect(await logged(/exceeds the limit of \d+ for tag 3/)).toMatch(/frame payload of 268435456 bytes/);
    expect(memoryNow() - before).toBeLessThan(MEMORY_SLACK);
    urgent.destroy();
    await logged(/session 00000001: failed/);
    await settled();
  });

  it("a session whose urgent connection never comes: its bulk bytes are bounded, then refused", async () => {
    const bulk = await connectChannel("127.0.0.1", agent.port, { channel: "bulk", session: fresh(), epoch: 0, info: infoFor(GUEST) }, 5000);
    const b = watch(bulk);
    const before = memoryNow();
    await flood(bulk, Buffer.alloc(MiB, 0x41), 64 * MiB);
    await b.closed;
    expect(await logged(/refused: the source sent \d+ bytes on its bulk connection before its session formed/)).toBeTruthy();
    expect(memoryNow() - before).toBeLessThan(MEMORY_SLACK);
  });

  it("a guest larger than --max-memory, or a hello that disagrees with its info: refused before any guest is spawned", async () => {
    for (const [pages, info, why] of [
      [2 ** 28, infoFor(2 ** 40), /a guest of 1TiB does not fit: this destination has 64 MiB of its --max-memory left/],
      [GUEST / PS, infoFor(2 * GUEST), /disagrees with its session info/],
    ] as const) {
      const { urgent, bulk } = await openPair(agent.port, fresh(), info);
      const b = watch(bulk);
      bulk.write(hello(pages));
      const err = await b.first("error");
      expect(err).toMatchObject({ type: "error", code: ErrorCode.BadLayout });
      expect((err as { reason: string }).reason).toMatch(why);
      await b.closed;
      urgent.destroy();
    }
    expect(log.filter((l) => /starting the destination guest/.test(l))).toHaveLength(1); // the first test's only
  });

  it("a second session beyond --max-sessions is refused while the first runs", async () => {
    const first = await openPair(agent.port, fresh(), infoFor(GUEST));
    const f = watch(first.bulk);
    first.bulk.write(hello(GUEST / PS));
    await f.first("helloAck");
    const second = await openPair(agent.port, fresh(), infoFor(GUEST));
    const s = watch(second.urgent);
    const err = await s.first("error");
    expect((err as { reason: string }).reason).toMatch(/already runs 1 migration\(s\), its limit \(--max-sessions 1\)/);
    second.bulk.destroy();
    first.urgent.destroy();
    first.bulk.destroy();
    await settled();
  });

  it("silence: idle connections, a pair without a hello, half a frame — each closed at its deadline", async () => {
    // 100 connections that send nothing: at most 64 wait (the rest are closed at once), each until the preamble deadline.
    const idle: Socket[] = [];
    for (let i = 0; i < 100; i++) idle.push(connect({ host: "127.0.0.1", port: agent.port }).on("error", () => undefined).resume());
    await Promise.all(idle.map((s) => new Promise((r) => s.once("close", r))));
    // Both connections, then nothing.
    const quiet = await openPair(agent.port, fresh(), infoFor(GUEST));
    await Promise.all([watch(quiet.urgent).closed, watch(quiet.bulk).closed]);
    expect(await logged(/did not complete its setup \(both connections and a hello\) within 1500 ms/)).toBeTruthy();
    // A session that stops in the middle of a frame after its handshake.
    const { urgent, bulk } = await openPair(agent.port, fresh(), infoFor(GUEST));
    const b = watch(bulk);
    bulk.write(hello(GUEST / PS));
    await b.first("helloAck");
    bulk.write(encodeMessage(pagesMsg([{ page: 1, data: new Uint8Array(PS) }]), PS).subarray(0, 100));
    await b.closed;
    expect(await logged(/stopped sending for \d+ s in the middle of a frame on the bulk channel \(100 bytes of it received\)/)).toBeTruthy();
    urgent.destroy();
    await settled();
  });

  it("then a legitimate migration completes and verifies, and peer text reaches the log only sanitised", async () => {
    const w = scaleWorkload(loadWorkload("examples/idle.json"), GUEST);
    const src = await SourceAgent.start({ workload: { ...w, name: "evil\u001b[2J\nFAKE destination line\u202e", warmupMs: 50 }, mode: "postcopy", seed: 2, steps: 100, peer: { host: "127.0.0.1", port: agent.port } });
    try {
      const r = await src.migrate();
      expect(r.outcome, `${String(r.reason)}\n${log.join("\n")}`).toBe("completed");
      expect(r.verified, `${String(r.reason)}\n${log.join("\n")}`).toBe(true);
    } finally {
      await src.close();
    }
    const line = await logged(/evil/);
    expect(line).toContain("evil\\x1b[2J\\x0aFAKE destination line\\u202e");
    for (const l of log) expect(l).not.toMatch(new RegExp(UNSAFE_CHARS.source));
  });
});

describe("sanitize", () => {
  it("makes control, separator and bidi characters visible, and cuts long text", () => {
    expect(sanitize("a\nb\u001b[31mc\u0085d\u2028e\u2066f\u202eg")).toBe("a\\x0ab\\x1b[31mc\\x85d\\u2028e\\u2066f\\u202eg");
    expect(sanitize("é ü ☃ 🙂")).toBe("é ü ☃ 🙂");
    expect(sanitize("x".repeat(600))).toMatch(/^x{500}… \(100 more characters\)$/);
  });
});
