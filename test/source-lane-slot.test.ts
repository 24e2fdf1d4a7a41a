/**
 * The destination's "attached" frame, the first on every fault lane
 * (native/src/fault_lane.h), and what the source does with it
 * (src/real/source-lane-slot.ts): its engine hears the destination's
 * helloAck only once the destination said it attached the lane — so the
 * destination's attach work is done before the source pauses its guest —
 * and a destination that never says so delays the helloAck by the connect
 * timeout at most. Both ends' native checks of the frame: written before any
 * request, taken once and first only. Timings never decide pass or fail: the
 * wait for a silent peer is bounded by a timer, and the test only checks that
 * it ended and said so.
 */
import { createServer, Socket, type Server } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { encodeMessage } from "../src/engine/codec.js";
import type { Channel, Message } from "../src/engine/messages.js";
import { LANE_ATTACHED_FRAME } from "../src/real/dest-lane-slot.js";
import { FAULT_LANE_CAPABILITY } from "../src/real/fault-lane.js";
import { closeFd, constants, createFaultLane, createLaneServer, memfdCreate, socketPair, type LaneServerNotice } from "../src/real/native.js";
import { PREAMBLE_BYTES } from "../src/real/preamble.js";
import { SourceLaneSlot, type LaneHolder } from "../src/real/source-lane-slot.js";
import { INSECURE } from "../src/real/tls.js";

const PS = constants().PAGE_SIZE;
const PAGES = 8;
/** The lane's helloAck (fault_lane.h): version 1, the lane's capability bit. */
const ATTACHED = Buffer.from(encodeMessage({ type: "helloAck", version: 1, capabilities: FAULT_LANE_CAPABILITY }, 0));

const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length > 0) cleanups.pop()?.();
});

function until<T>(what: () => T | undefined): Promise<T> {
  return new Promise((resolve) => {
    const check = (): void => {
      const v = what();
      if (v !== undefined) resolve(v);
      else setTimeout(check, 5);
    };
    check();
  });
}

/** A destination that reads each lane's preamble and then sends `after` (null: nothing, ever). */
async function destination(after: Buffer | null): Promise<{ port: number; lanes: Socket[] }> {
  const lanes: Socket[] = [];
  const server: Server = createServer((s) => {
    lanes.push(s);
    s.on("error", () => undefined);
    let got = 0;
    s.on("data", (b) => {
      const before = got;
      got += b.length;
      if (before < PREAMBLE_BYTES && got >= PREAMBLE_BYTES && after !== null) s.write(after);
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => {
    for (const s of lanes) s.destroy();
    server.close();
  });
  const addr = server.address();
  return { port: typeof addr === "object" && addr !== null ? addr.port : 0, lanes };
}

function slot(port: number, connectTimeoutMs: number): { slot: SourceLaneSlot; holder: LaneHolder; delivered: [Message<Uint8Array>, Channel][]; notes: string[]; downs: string[] } {
  const mem = memfdCreate("lane-slot", PAGES * PS);
  const holder: LaneHolder = {};
  const delivered: [Message<Uint8Array>, Channel][] = [];
  const notes: string[] = [];
  const downs: string[] = [];
  const s = new SourceLaneSlot(
    { host: "127.0.0.1", port, session: "ab".repeat(16), security: INSECURE, connectTimeoutMs, dataPlane: { memfd: mem, pageSize: PS, pageCount: PAGES } },
    {
      wanted: () => true,
      armed: () => false,
      isCurrent: (h) => h === holder,
      down: (_h, r) => downs.push(r),
      malformed: (_h, r) => downs.push(r),
      deliver: (m, c) => delivered.push([m, c]),
      note: (l) => notes.push(l),
      served: () => undefined,
    },
  );
  cleanups.push(() => {
    s.stop(holder);
    closeFd(mem);
  });
  return { slot: s, holder, delivered, notes, downs };
}

const helloAck: Message<Uint8Array> = { type: "helloAck", version: 1, capabilities: FAULT_LANE_CAPABILITY };

describe("the source's engine hears the helloAck once the destination attached its lane", () => {
  it("held until the attached frame came; what came meanwhile follows in order", async () => {
    const d = await destination(ATTACHED);
    const t = slot(d.port, 60_000); // a timeout no run reaches: the frame releases it
    expect(t.slot.intercept(t.holder, helloAck, "bulk", 0)).toBe(true);
    const later: Message<Uint8Array> = { type: "error", code: 1, reason: "later" };
    expect(t.slot.intercept(t.holder, later, "urgent", 0)).toBe(true);
    expect(t.delivered).toEqual([]);
    await until(() => (t.delivered.length === 2 ? true : undefined));
    expect(t.delivered.map(([m, c]) => `${m.type}/${c}`)).toEqual(["helloAck/bulk", "error/urgent"]);
    expect(t.holder.lane).toBeDefined();
    expect(t.slot.lanesOpened).toBe(1);
    expect(t.notes).toEqual([]);
    // The next message is the engine's at once.
    expect(t.slot.intercept(t.holder, later, "urgent", 0)).toBe(false);
  });

  it("a destination that never says it attached delays the helloAck by the connect timeout at most, and it is said", async () => {
    const d = await destination(null);
    const t = slot(d.port, 50);
    expect(t.slot.intercept(t.holder, helloAck, "bulk", 0)).toBe(true);
    await until(() => (t.delivered.length === 1 ? true : undefined));
    expect(t.delivered[0][0].type).toBe("helloAck");
    expect(t.notes.join("\n")).toMatch(/did not say it attached within 50 ms/);
    expect(t.holder.lane).toBeDefined(); // kept: it serves if used after all
    expect(t.downs).toEqual([]);
  });

  it("a destination whose lane ends instead releases the helloAck at once, the link down", async () => {
    const d = await destination(Buffer.from("not a frame at all"));
    const t = slot(d.port, 60_000);
    t.slot.intercept(t.holder, helloAck, "bulk", 0);
    await until(() => (t.downs.length > 0 ? true : undefined));
    expect(t.downs[0]).toMatch(/not a page request/);
    await until(() => (t.delivered.length === 1 ? true : undefined));
  });
});

describe("the attached frame at the native ends", () => {
  it("the destination's lane writes it first, before any request, even when armed at once", async () => {
    const [a, b] = socketPair();
    const peer = new Socket({ fd: b, readable: true, writable: true });
    const lane = createFaultLane(a, 5000, () => undefined);
    cleanups.push(() => {
      lane.stop();
      peer.destroy();
      closeFd(a);
    });
    const first = new Promise<Buffer>((resolve) => peer.once("data", (x: Buffer) => resolve(x)));
    lane.start(new Uint8Array(0));
    expect(Array.from((await first).subarray(0, 16))).toEqual(Array.from(ATTACHED));
    // The same bytes the destination's JS writes on a lane it only holds (no native thread for it).
    expect(Array.from(LANE_ATTACHED_FRAME)).toEqual(Array.from(ATTACHED));
  });

  for (const [what, bytes, words] of [
    ["a second attached frame", Buffer.concat([ATTACHED, ATTACHED]), /not a page request \(tag 2, 8 bytes\)/],
    ["an attached frame after a request", Buffer.concat([Buffer.from([0x50, 0x50, 4, 0, 4, 0, 0, 0, 1, 0, 0, 0]), ATTACHED]), /not a page request \(tag 2, 8 bytes\)/],
    ["an attached frame of another length", Buffer.from([0x50, 0x50, 2, 0, 1, 0, 0, 0, 0]), /not a page request \(tag 2, 1 bytes\)/],
  ] as const) {
    it(`the source's lane reports it once, first; ${what} ends the lane with a protocol error`, async () => {
      const [a, b] = socketPair();
      const mem = memfdCreate("lane-attached", PAGES * PS);
      const notices: LaneServerNotice[] = [];
      const server = createLaneServer(a, mem, PS, PAGES, 5000, (n) => notices.push(...n));
      cleanups.push(() => {
        server.stop();
        closeFd(mem);
        closeFd(b);
        closeFd(a);
      });
      server.arm();
      server.start(bytes);
      const end = await until(() => notices.find((n) => n.kind === "end"));
      expect(end.kind === "end" && end.protocol).toBe(true);
      expect(end.kind === "end" && end.reason).toMatch(words);
      expect(notices.filter((n) => n.kind === "attached")).toHaveLength(what === "a second attached frame" ? 1 : 0);
    });
  }
});
