import { describe, expect, it } from "vitest";
import type { Channel } from "../src/engine/messages.js";
import { EventQueue } from "../src/sim/event-queue.js";
import { Link, parseLink, type Direction, type LinkEvent, type LinkSpec } from "../src/sim/link.js";

type Log = [string, number, Direction, string][];

/** A link with its own agenda; every transmitted/delivered callback is logged with its time. */
function rig(spec: LinkSpec) {
  const queue = new EventQueue<LinkEvent<string>>();
  const log: Log = [];
  const link = new Link<string>(spec, {
    schedule: (t, ev) => queue.push(t, ev),
    transmitted: (dir, channel, now) => log.push(["tx", now, dir, channel]),
    delivered: (dir, _channel, msg, now) => log.push(["rx", now, dir, msg]),
  });
  const runUntil = (t: number) => {
    while (queue.size > 0 && queue.peekTime() <= t) {
      const e = queue.pop();
      if (e) link.onEvent(e.event, e.time);
    }
  };
  const send = (dir: Direction, channel: Channel, msg: string, bytes: number, now: number) => link.send(dir, channel, msg, bytes, now);
  // The bulk message's end, and an urgent one's only when its lane refused one: see link.ts.
  return { link, log, runUntil, send, queue };
}

const delivered = (log: Log, dir: Direction) => log.filter((e) => e[0] === "rx" && e[2] === dir).map((e) => e[3]);

describe("link model", () => {
  it("serialises at the bandwidth and delivers one latency later", () => {
    // 1 MB/s: 1 byte per µs.
    const { log, runUntil, send } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 100 });
    send(0, "bulk", "a", 1000, 0);
    send(0, "bulk", "b", 500, 0);
    runUntil(Infinity);
    expect(log).toEqual([
      ["tx", 1000, 0, "bulk"],
      ["tx", 1500, 0, "bulk"],
      ["rx", 1100, 0, "a"],
      ["rx", 1600, 0, "b"],
    ].sort((x, y) => (x[1] as number) - (y[1] as number)));
  });

  it("delivers a channel's messages in the order it sent them, whatever each one's receiver work", () => {
    // "a" takes the receiver 5000 µs, "b" 10: b waits for a, as a connection's next frame does; the urgent channel is its own.
    const { log, runUntil, link } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 100 });
    link.send(0, "bulk", "a", 1000, 0, 1000, 5000);
    link.send(0, "bulk", "b", 100, 0, 100, 10);
    link.send(0, "urgent", "u", 10, 0, 10, 0);
    runUntil(Infinity);
    const rx = log.filter((e) => e[0] === "rx").map((e) => [e[1], e[3]]);
    // u first on the wire (0–10 µs), a 10–1010, b 1010–1110: b would arrive at 1220, and is held until a, at 6110.
    expect(rx).toEqual([[110, "u"], [6110, "a"], [6110, "b"]]);
  });

  it("is full duplex: the directions do not share bandwidth", () => {
    const { log, runUntil, send } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 0 });
    send(0, "bulk", "down", 1000, 0);
    send(1, "bulk", "up", 1000, 0);
    runUntil(Infinity);
    expect(log.filter((e) => e[0] === "rx").map((e) => [e[1], e[3]])).toEqual([[1000, "down"], [1000, "up"]]);
  });

  it("urgent messages overtake queued bulk ones (a message shorter than a packet is not cut)", () => {
    const { log, runUntil, send, link } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 10 });
    send(0, "bulk", "b1", 1000, 0);
    send(0, "bulk", "b2", 1000, 0);
    send(0, "bulk", "b3", 1000, 0);
    runUntil(500);
    send(0, "urgent", "u", 20, 500);
    runUntil(Infinity);
    expect(delivered(log, 0)).toEqual(["b1", "u", "b2", "b3"]);
    expect(log.find((e) => e[3] === "u")?.[1]).toBe(1000 + 20 + 10);
    expect(link.bytesSent(0, Infinity)).toEqual({ urgent: 20, bulk: 3000 });
  });

  it("an urgent message cuts into a long bulk message at its next packet boundary", () => {
    // 1 byte per µs; packets of 1500 bytes. The bulk message is on the wire from 0 to 64000.
    const { log, runUntil, send, link } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 10 });
    send(0, "bulk", "big", 64_000, 0);
    send(0, "bulk", "next", 100, 0);
    runUntil(2000);
    send(0, "urgent", "u1", 20, 2000);
    send(0, "urgent", "u2", 30, 2100);
    runUntil(3019);
    expect(link.bytesSent(0, 3019)).toEqual({ urgent: 0, bulk: 0 });
    runUntil(3020);
    expect(link.bytesSent(0, 3020)).toEqual({ urgent: 20, bulk: 0 });
    runUntil(Infinity);
    expect(delivered(log, 0)).toEqual(["u1", "u2", "big", "next"]);
    // The cut comes at 3000 (two packets sent); both urgent messages go, then the rest of "big".
    expect(log.find((e) => e[0] === "rx" && e[3] === "u1")?.[1]).toBe(3000 + 20 + 10);
    expect(log.find((e) => e[0] === "rx" && e[3] === "u2")?.[1]).toBe(3050 + 10);
    expect(log.find((e) => e[0] === "tx" && e[3] === "bulk")?.[1]).toBe(64_050);
    expect(link.bytesSent(0, Infinity)).toEqual({ urgent: 50, bulk: 64_100 });
  });

  it("urgent messages queued behind another urgent one go before waiting bulk", () => {
    const { log, runUntil, send } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 0, segmentBytes: 1000 });
    send(0, "urgent", "u1", 500, 0);
    send(0, "bulk", "big", 10_000, 0);
    send(0, "urgent", "u2", 500, 100);
    runUntil(Infinity);
    expect(delivered(log, 0)).toEqual(["u1", "u2", "big"]);
  });

  it("with a shared channel, urgent messages wait behind bulk in one FIFO", () => {
    const { log, runUntil, send } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 10, sharedChannel: true });
    send(0, "bulk", "b1", 1000, 0);
    send(0, "bulk", "b2", 1000, 0);
    runUntil(500);
    send(0, "urgent", "u", 20, 500);
    runUntil(Infinity);
    expect(delivered(log, 0)).toEqual(["b1", "b2", "u"]);
    // The sender still learns the message's own channel.
    expect(log.find((e) => e[0] === "tx" && e[3].startsWith("urgent"))?.[1]).toBe(2020);
  });

  it("an outage loses queued and travelling messages; the link works again once up", () => {
    const { log, runUntil, send, link } = rig({ bandwidthBytesPerSec: 1e6, latencyUs: 1000 });
    send(0, "bulk", "travelling", 100, 0); // on the wire until 100, arrives at 1100
    send(0, "bulk", "sending", 1000, 0); // serialising 100..1100
    send(0, "bulk", "queued", 10, 0);
    send(1, "urgent", "reply", 10, 0); // arrives 1010
    runUntil(500);
    link.goDown(500);
    send(0, "urgent", "while-down", 10, 500);
    runUntil(3000);
    expect(log.filter((e) => e[0] === "rx")).toEqual([]);
    expect(link.lost).toBe(5);
    expect(link.inFlight(0) + link.inFlight(1)).toBe(0);
    link.goUp();
    send(0, "bulk", "after", 10, 3000);
    runUntil(Infinity);
    expect(delivered(log, 0)).toEqual(["after"]);
    expect(log.find((e) => e[3] === "after")?.[1]).toBe(4010);
  });

  it("tells the sender of an urgent message's end only when its lane refused one", () => {
    // A window of 100 bytes: two 60-byte urgent messages, the second refused until the first has left.
    const queue = new EventQueue<LinkEvent<string>>();
    const log: Log = [];
    const link = new Link<string>(
      { bandwidthBytesPerSec: 1e6, latencyUs: 10 },
      {
        schedule: (t, ev) => queue.push(t, ev),
        transmitted: (dir, channel, now) => log.push(["tx", now, dir, channel]),
        delivered: (dir, _channel, msg, now) => log.push(["rx", now, dir, msg]),
      },
      100,
    );
    expect(link.hasRoom(0, "urgent", 0)).toBe(true);
    link.send(0, "urgent", "u1", 60, 0);
    expect(link.hasRoom(0, "urgent", 0)).toBe(true);
    link.send(0, "urgent", "u2", 60, 0);
    expect(link.hasRoom(0, "urgent", 30)).toBe(false);
    expect(link.hasRoom(0, "urgent", 30)).toBe(false); // asked again: still one wake-up
    for (let e = queue.pop(); e; e = queue.pop()) link.onEvent(e.event, e.time);
    expect(log).toEqual([
      ["tx", 60, 0, "urgent"],
      ["rx", 70, 0, "u1"],
      ["rx", 130, 0, "u2"],
    ]);
    expect(link.hasRoom(0, "urgent", 130)).toBe(true);
  });

  it("rejects nonsense specs", () => {
    expect(() => rig({ bandwidthBytesPerSec: 0, latencyUs: 1 })).toThrow(/bandwidth/);
    expect(() => rig({ bandwidthBytesPerSec: 1, latencyUs: -1 })).toThrow(/latency/);
  });
});

describe("parseLink", () => {
  it.each([
    ["1Gbit,0.1ms", { bandwidthBytesPerSec: 125e6, latencyUs: 100 }],
    ["10Gbit/s,50us", { bandwidthBytesPerSec: 1.25e9, latencyUs: 50 }],
    ["100MB/s,1ms", { bandwidthBytesPerSec: 1e8, latencyUs: 1000 }],
    ["1 GiB/s, 2 s", { bandwidthBytesPerSec: 1024 ** 3, latencyUs: 2e6 }],
    ["100Mbit,0us,shared", { bandwidthBytesPerSec: 12.5e6, latencyUs: 0, sharedChannel: true }],
  ])("%s", (text, spec) => {
    expect(parseLink(text)).toEqual(spec);
  });

  it.each([
    ["1Gbit", /expected "<bandwidth>,<latency>/],
    ["fast,1ms", /bandwidth "fast" must be a number with a unit/],
    ["1Gbps,1ms", /bandwidth "1Gbps"/],
    ["1Gbit,1", /latency "1" must be a number with a unit/],
    ["1Gbit,1ms,sharp", /third field may only be "shared"/],
    ["0Gbit,1ms", /bandwidth must be positive/],
  ])("refuses %s clearly", (text, message) => {
    expect(() => parseLink(text)).toThrow(message);
  });
});
