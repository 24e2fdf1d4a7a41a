/**
 * The planned link (src/sim/link.ts) against the event-by-event one it
 * replaced (test/support/event-link.ts), over random message sequences: a
 * sender per direction offers messages at random times and sends them while
 * its lane has room (again when the link says a lane may take more), with
 * outages on the way. Both must deliver the same messages at the same times
 * in the same order, count the same bytes and the same losses; and the
 * planned link's log must keep the model's promises on its own: each
 * message once, its bytes counted, the bandwidth never exceeded, latency
 * added once, an urgent message behind at most one packet of bulk.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { Channel } from "../src/engine/messages.js";
import { EventQueue } from "../src/sim/event-queue.js";
import { Link, type Direction, type LinkSpec } from "../src/sim/link.js";
import { EventLink } from "./support/event-link.js";

interface Offer {
  at: number;
  dir: Direction;
  channel: Channel;
  bytes: number;
  /** Occupancy beyond the bytes (a host's work), bytes. */
  extraOcc: number;
  extraUs: number;
}

interface Scenario {
  spec: LinkSpec;
  window: number;
  offers: Offer[];
  outages: { at: number; for: number }[];
}

interface Delivery {
  at: number;
  dir: Direction;
  id: number;
}

interface Outcome {
  log: Delivery[];
  /** When each message was sent. */
  sentAt: Map<number, number>;
  bytes: [Record<Channel, number>, Record<Channel, number>];
  lost: number;
}

type Ev = { kind: "offer"; id: number } | { kind: "down" } | { kind: "up" } | { kind: "link"; ev: unknown };

/** Runs a scenario on either link; `planned` chooses which. */
function run(s: Scenario, planned: boolean): Outcome {
  const queue = new EventQueue<Ev>();
  const log: Delivery[] = [];
  const sentAt = new Map<number, number>();
  const ready: number[][] = [[], []];
  let now = 0;
  const hooks = {
    schedule: (t: number, ev: unknown) => queue.push(t, { kind: "link", ev }),
    transmitted: (dir: Direction) => pull(dir),
    delivered: (dir: Direction, _c: Channel, id: number, at: number) => log.push({ at, dir, id }),
  };
  const link = planned ? new Link<number>(s.spec, hooks, s.window) : new EventLink<number>(s.spec, { ...hooks, transmitted: (dir) => pull(dir) }, s.window);
  const hasRoom = (dir: Direction, ch: Channel) => (link instanceof Link ? link.hasRoom(dir, ch, now) : link.hasRoom(dir, ch));
  // The sender pulls in offer order per channel, urgent first, while its lane has room.
  function pull(dir: Direction): void {
    for (const ch of ["urgent", "bulk"] as const) {
      const list = ready[dir];
      for (let i = 0; i < list.length; ) {
        const o = s.offers[list[i]];
        if (o.channel !== ch) {
          i++;
          continue;
        }
        if (!hasRoom(dir, ch)) break;
        sentAt.set(list[i], now);
        link.send(dir, ch, list[i], o.bytes, now, o.bytes + o.extraOcc, o.extraUs);
        list.splice(i, 1);
      }
    }
  }
  s.offers.forEach((o, id) => queue.push(o.at, { kind: "offer", id }));
  for (const o of s.outages) {
    queue.push(o.at, { kind: "down" });
    queue.push(o.at + o.for, { kind: "up" });
  }
  for (let e = queue.pop(); e; e = queue.pop()) {
    now = e.time;
    const ev = e.event;
    if (ev.kind === "offer") {
      const dir = s.offers[ev.id].dir;
      ready[dir].push(ev.id);
      pull(dir);
    } else if (ev.kind === "down") {
      if (link instanceof Link) link.goDown(now);
      else link.goDown();
    } else if (ev.kind === "up") {
      link.goUp();
      pull(0);
      pull(1);
    } else link.onEvent(ev.ev as never, now);
  }
  const bytes = (dir: Direction) => ({ ...(link instanceof Link ? link.bytesSent(dir, Infinity) : link.bytesSent(dir)) });
  return { log, sentAt, bytes: [bytes(0), bytes(1)], lost: link.lost };
}

const offer: fc.Arbitrary<Offer> = fc.record({
  at: fc.double({ min: 0, max: 20_000, noNaN: true }),
  dir: fc.constantFrom<Direction>(0, 1),
  channel: fc.constantFrom<Channel>("urgent", "bulk", "bulk"),
  bytes: fc.integer({ min: 1, max: 9000 }),
  extraOcc: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 3000 })),
  extraUs: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 300, noNaN: true })),
});

const scenario = (withOutages: boolean): fc.Arbitrary<Scenario> =>
  fc.record({
    spec: fc.record({
      bandwidthBytesPerSec: fc.constantFrom(1e6, 1.3e6, 12.5e6, 125e6),
      latencyUs: fc.constantFrom(0, 7.5, 100, 1000),
      sharedChannel: fc.boolean(),
      segmentBytes: fc.constantFrom(1000, 1500, 4096),
    }),
    window: fc.constantFrom(4000, 16_000, 64 * 1024),
    offers: fc.array(offer, { minLength: 1, maxLength: 40 }),
    outages: withOutages ? fc.array(fc.record({ at: fc.double({ min: 0, max: 20_000, noNaN: true }), for: fc.double({ min: 1, max: 3000, noNaN: true }) }), { maxLength: 2 }) : fc.constant([]),
  });

const EPS = 1e-6;

describe("the planned link against the event-by-event one", () => {
  it("delivers the same messages at the same times, with the same bytes and losses", () => {
    fc.assert(
      fc.property(scenario(true), (s) => {
        const a = run(s, false);
        const b = run(s, true);
        expect(b.log).toEqual(a.log);
        expect(b.bytes).toEqual(a.bytes);
        expect(b.lost).toBe(a.lost);
      }),
      { numRuns: 400, seed: 14 },
    );
  });

  it("keeps the model's promises: each message once, bytes conserved, bandwidth and latency, an urgent one behind at most a packet", () => {
    fc.assert(
      fc.property(scenario(false), (s) => {
        const { log, sentAt, bytes } = run(s, true);
        const usPerByte = 1e6 / s.spec.bandwidthBytesPerSec;
        // Every message sent arrives exactly once (no outages here), and the bytes counted are theirs.
        expect(log.map((d) => d.id).sort((x, y) => x - y)).toEqual([...sentAt.keys()].sort((x, y) => x - y));
        const want: [Record<Channel, number>, Record<Channel, number>] = [{ urgent: 0, bulk: 0 }, { urgent: 0, bulk: 0 }];
        for (const id of sentAt.keys()) want[s.offers[id].dir][s.offers[id].channel] += s.offers[id].bytes;
        expect(bytes).toEqual(want);
        for (const dir of [0, 1] as const) {
          // When each message's last byte left: its arrival less the latency (added once) and the receiver's work.
          const msgs = log.filter((d) => d.dir === dir).map((d) => {
            const o = s.offers[d.id];
            return { o, sent: sentAt.get(d.id) as number, left: d.at - s.spec.latencyUs - o.extraUs, occUs: (o.bytes + o.extraOcc) * usPerByte };
          });
          for (const m of msgs) expect(m.left).toBeGreaterThanOrEqual(m.sent + m.occUs - EPS);
          // The bandwidth: what was sent from t on and had left by t' held the wire at most t' − t.
          for (const from of msgs) {
            for (const to of msgs) {
              const held = msgs.filter((m) => m.sent >= from.sent && m.left <= to.left).reduce((sum, m) => sum + m.occUs, 0);
              expect(held).toBeLessThanOrEqual(Math.max(0, to.left - from.sent) + EPS);
            }
          }
          // Urgent first: behind earlier urgent ones and at most one packet of bulk (its own channel only).
          // A delivery held for the one before it (at the same time as it) says nothing of its own wire time: skipped.
          if (!s.spec.sharedChannel) {
            const urgent = msgs.filter((m) => m.o.channel === "urgent").sort((x, y) => x.left - y.left);
            let prevLeft = -Infinity;
            let prevAt = -Infinity;
            for (const m of urgent) {
              const segmentUs = (s.spec.segmentBytes as number) * usPerByte;
              const at = m.left + s.spec.latencyUs + m.o.extraUs;
              if (Math.abs(at - prevAt) > EPS) expect(m.left).toBeLessThanOrEqual(Math.max(m.sent, prevLeft) + segmentUs + m.occUs + EPS);
              prevLeft = m.left;
              prevAt = at;
            }
          }
        }
      }),
      { numRuns: 300, seed: 15 },
    );
  });
});
