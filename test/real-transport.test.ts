/**
 * The real back end's transport over loopback sockets: framing, and what a
 * bad peer gets — garbage, another protocol version, a disconnect during
 * setup. A source facing such a peer reports a clear reason and its guest
 * keeps running. No assertion depends on timing.
 */
import { createHash } from "node:crypto";
import { connect, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import { FrameDecoder } from "../src/engine/frame-decoder.js";
import { ErrorCode, PROTOCOL_VERSION, type Message } from "../src/engine/messages.js";
import { DestinationAgent } from "../src/real/dest-agent.js";
import { scaleWorkload } from "../src/real/plan.js";
import { SourceAgent } from "../src/real/source-agent.js";
import { connectChannel, FramedSocket, Listener, type Accepted } from "../src/real/transport.js";
import { loadWorkload } from "../src/workload/parse.js";
import { toGuestConfig } from "../src/workload/guest-config.js";
import { entriesOf, pagesMsg } from "./support/pages.js";

const PS = 4096;
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function randomPage(seed: number): Uint8Array {
  const b = new Uint8Array(PS);
  for (let i = 0; i < PS; i++) b[i] = (seed * 31 + i * 7) & 0xff;
  return b;
}

/** Messages with page data replaced by a digest: comparable, and a mismatch prints a short diff. */
function digest(msgs: Message<Uint8Array>[]): unknown[] {
  return msgs.map((m) =>
    m.type === "pages"
      ? { type: "pages", pages: entriesOf(m).map((e) => ({ page: e.page, data: e.data === null ? null : createHash("sha1").update(e.data).digest("hex"), kind: e.data?.constructor.name })) }
      : m,
  );
}

function sampleMessages(): Message<Uint8Array>[] {
  return [
    { type: "hello", version: PROTOCOL_VERSION, capabilities: 7, pageSize: PS, pageCount: 1000, mode: "postcopy" },
    pagesMsg(Array.from({ length: 40 }, (_, i) => ({ page: i * 3, data: i % 4 === 0 ? null : randomPage(i) }))),
    { type: "pageRequest", page: 17 },
    { type: "switchover", stale: Uint32Array.from([1, 5, 9]), cpuState: new Uint8Array([1, 2, 3]) },
    pagesMsg([]),
    { type: "report", json: JSON.stringify({ kind: "progress", x: "é" }) },
    { type: "error", code: 3, reason: "nope" },
  ];
}

/** A listener whose accepted connections go to `onAccepted`. */
async function fakeDestination(onAccepted: (a: Accepted) => void): Promise<number> {
  const l = await Listener.listen("127.0.0.1", 0, onAccepted, () => undefined);
  cleanups.push(() => l.close());
  return l.port;
}

async function sourceAgainst(port: number): Promise<SourceAgent> {
  const w = scaleWorkload(loadWorkload("examples/idle.json"), 16 * 1024 * 1024);
  const agent = await SourceAgent.start({
    workload: { ...w, warmupMs: 50 },
    mode: "postcopy",
    seed: 3,
    peer: { host: "127.0.0.1", port },
    options: { setupTimeoutMs: 20_000 },
  });
  cleanups.push(() => agent.close());
  return agent;
}

/** The source guest is still running: its step count grows. */
async function expectRunning(agent: SourceAgent): Promise<void> {
  const first = await agent.guest.progress();
  expect(first.state).toBe("running");
  const total = (p: typeof first) => p.vcpus.reduce((a, v) => a + v.steps, 0);
  for (;;) {
    await new Promise((r) => setTimeout(r, 20));
    const p = await agent.guest.progress();
    expect(p.state).toBe("running");
    if (total(p) > total(first)) return;
  }
}

function readFrames(socket: Socket): Promise<Message<Uint8Array>[]> {
  const d = new FrameDecoder(0);
  const got: Message<Uint8Array>[] = [];
  return new Promise((resolve) => {
    socket.on("data", (c: Buffer) => got.push(...d.push(c)));
    socket.on("close", () => resolve(got));
    socket.on("error", () => undefined);
  });
}

describe("framing", () => {
  it("carries every message type over loopback, and reports each frame's bytes as sent and as taken", async () => {
    const received: Message<Uint8Array>[] = [];
    // What the receiving side counts as taken when each handler starts: the frames before it, whole.
    const takenAtHandler: number[] = [];
    let receiver!: FramedSocket;
    let done!: () => void;
    const all = new Promise<void>((r) => (done = r));
    const msgs = sampleMessages();
    const port = await fakeDestination((a) => {
      const fs = new FramedSocket(a.socket, a.preamble.channel, 0, {
        message: (m) => {
          takenAtHandler.push(fs.taken);
          // The decoder takes the layout from its owner, not from a hello it reads.
          if (m.type === "hello") fs.decoder.setLayout(m.pageSize, m.pageCount);
          received.push(m);
          if (received.length === msgs.length) done();
        },
        down: () => undefined,
      }, a.rest);
      receiver = fs;
      fs.start();
    });
    const socket = await connectChannel("127.0.0.1", port, { channel: "bulk", session: "ab".repeat(16), epoch: 0, info: "{}" }, 2000);
    const fs = new FramedSocket(socket, "bulk", PS, { message: () => undefined, down: () => undefined });
    cleanups.push(() => fs.close());
    let sentBytes = 0;
    let expected = 0;
    const before: number[] = [];
    const sent = new Promise<void>((resolve) => {
      for (const m of msgs) {
        before.push(expected);
        expected += fs.send(m, PS, (b) => {
          sentBytes += b;
          if (sentBytes === expected) resolve();
        });
      }
    });
    await all;
    await sent;
    expect(received.map((m) => m.type)).toEqual(msgs.map((m) => m.type));
    expect(digest(received)).toEqual(digest(msgs));
    // The destination's count of a stream matches the source's count of what it sent (the release log compares them).
    expect(takenAtHandler).toEqual(before);
    expect(receiver.taken).toBe(expected);
  });

  it("refuses corrupt pages frames, naming what is wrong", () => {
    const pages = Buffer.from(encodeMessage(pagesMsg([{ page: 1, data: randomPage(1) }]), PS));
    const variants: Buffer[] = [];
    const badFlags = Buffer.from(pages);
    badFlags[8 + 4 + 4] = 6;
    variants.push(badFlags);
    const badCount = Buffer.from(pages);
    badCount.writeUInt32LE(1_000_000, 8);
    variants.push(badCount);
    const short = Buffer.from(pages.subarray(0, pages.length - 10));
    short.writeUInt32LE(short.length - 8, 4);
    variants.push(short);
    for (const v of variants) {
      expect(() => new FrameDecoder(PS).push(v)).toThrow(/pages: /);
    }
  });
});

describe("a bad destination", () => {
  it("that sends garbage: a clear error naming the peer, and the source guest keeps running", async () => {
    const port = await fakeDestination((a) => a.socket.write("HTTP/1.1 400 Bad Request\r\n\r\n"));
    const agent = await sourceAgainst(port);
    const r = await agent.migrate();
    expect(r.outcome).toBe("failed");
    expect(String(r.reason)).toMatch(/peer 127\.0\.0\.1:\d+ sent bytes that are not a valid ppsim stream.*bad frame magic/);
    expect(String(r.reason)).toMatch(/the source guest keeps running/);
    await expectRunning(agent);
  });

  it("that speaks another protocol version: refused with both versions named", async () => {
    const port = await fakeDestination((a) => {
      if (a.preamble.channel !== "bulk") return;
      const fs = new FramedSocket(a.socket, "bulk", 0, {
        message: (m) => {
          if (m.type === "hello") fs.send({ type: "helloAck", version: 99, capabilities: 7 }, 0);
        },
        down: () => undefined,
      }, a.rest);
      fs.start();
    });
    const agent = await sourceAgainst(port);
    const r = await agent.migrate();
    expect(r.outcome).toBe("failed");
    expect(String(r.reason)).toMatch(/destination speaks protocol version 99; this source speaks 1\.\.1/);
    await expectRunning(agent);
  });

  it("that disconnects during setup: the migration fails before switchover, the source guest keeps running", async () => {
    const port = await fakeDestination((a) => {
      if (a.preamble.channel === "bulk") a.socket.destroy();
    });
    const agent = await sourceAgainst(port);
    const r = await agent.migrate();
    expect(r.outcome).toBe("failed");
    expect(r.switchover_reason).toBe("none");
    // Closed either once the pair is up (the link is lost) or while the second connection is still opening.
    expect(String(r.reason)).toMatch(/((closed|ECONNRESET).*link lost before switchover|cannot connect to .*); the source guest keeps running/);
    await expectRunning(agent);
  });

  it("that is not there: cannot connect, the source guest keeps running", async () => {
    const port = await fakeDestination(() => undefined);
    const probe = await Listener.listen("127.0.0.1", 0, () => undefined, () => undefined);
    const closedPort = probe.port;
    await probe.close();
    expect(closedPort).not.toBe(port);
    const agent = await sourceAgainst(closedPort);
    const r = await agent.migrate();
    expect(r.outcome).toBe("failed");
    expect(String(r.reason)).toMatch(/cannot connect to 127\.0\.0\.1:\d+: .*ECONNREFUSED/);
    await expectRunning(agent);
  });
});

describe("a destination agent facing a bad source", () => {
  it("answers garbage with an error frame, refuses an old protocol version, and keeps serving", async () => {
    const lines: string[] = [];
    const agent = await DestinationAgent.listen("127.0.0.1", 0, { log: (l) => lines.push(l) });
    cleanups.push(() => agent.close());

    const raw = connect({ host: "127.0.0.1", port: agent.port });
    const frames = readFrames(raw);
    raw.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    const got = await frames;
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ type: "error", code: ErrorCode.Protocol });
    expect((got[0] as { reason: string }).reason).toMatch(/not a ppsim source/);
    expect(lines.join("\n")).toMatch(/connection from 127\.0\.0\.1:\d+ refused: bad preamble magic/);

    // Then a well-formed source that speaks protocol version 0.
    const w = scaleWorkload(loadWorkload("examples/idle.json"), 16 * 1024 * 1024);
    const info = JSON.stringify({ workload: "idle", config: toGuestConfig(w, 1), seed: 1, steps: 100, mode: "postcopy" });
    const session = "cd".repeat(16);
    const urgent = await connectChannel("127.0.0.1", agent.port, { channel: "urgent", session, epoch: 0, info: "" }, 2000);
    const bulk = await connectChannel("127.0.0.1", agent.port, { channel: "bulk", session, epoch: 0, info }, 2000);
    cleanups.push(() => void urgent.destroy());
    const replies = readFrames(bulk);
    bulk.write(encodeMessage({ type: "hello", version: 0, capabilities: 7, pageSize: PS, pageCount: w.pageCount, mode: "postcopy" }, PS));
    const reply = await replies;
    expect(reply[0]).toMatchObject({ type: "error", code: ErrorCode.VersionMismatch });
    expect((reply[0] as { reason: string }).reason).toMatch(/source speaks protocol version 0/);
  });
});
