/**
 * The destination's resume (src/real/dest-engine.ts): the RESUME is written
 * to the guest before the fault lane is armed and the bulk receivers are
 * told the guest runs (neither is on the guest's way to its first step),
 * after the memory was told the guest may run, and all of it within the
 * engine's handling of the switchover (bulk 0's receiver waits for that
 * frame's release). Fakes stand for the guest, its memory and the links.
 */
import { describe, expect, it } from "vitest";
import { Destination } from "../src/engine/destination.js";
import { Capability, PROTOCOL_VERSION, type Channel, type Message } from "../src/engine/messages.js";
import { resolveOptions } from "../src/engine/options.js";
import { DestEngine, type DestEngineLinks } from "../src/real/dest-engine.js";
import { rehearseDestEngine } from "../src/real/dest-rehearsal.js";

function setup(): { eng: DestEngine; log: string[]; sent: Message<Uint8Array>[]; finish: () => void } {
  const log: string[] = [];
  const sent: Message<Uint8Array>[] = [];
  let resolveResume: () => void = () => undefined;
  const links = {
    id: "s",
    log: () => undefined,
    ended: () => false,
    send: (_c: Channel, m: Message<Uint8Array>) => void sent.push(m),
    buffered: () => 0,
    nativeBulk0: () => null,
    nativeBulks: () => [{ setRunning: () => void log.push("bulk running") }],
    layout: () => ({ pageSize: 4096, pageCount: 8 }),
    lane: { arm: () => void log.push("lane armed"), announce: (m: Message<Uint8Array>) => m },
    reports: { switchoverAt: null, resumedAt: null, startProgress: () => Promise.resolve() },
    trace: null,
    finish: () => void log.push("finish"),
    refuse: () => void log.push("refuse"),
    endSwitchoverWindow: () => void log.push("window closed"),
  } as unknown as DestEngineLinks;
  const eng = new DestEngine(links, { reconnectWaitMs: 1000 });
  eng.engine = new Destination<Uint8Array>(resolveOptions({ mode: "postcopy" }), { expect: { pageSize: 4096, pageCount: 8 } });
  eng.mem = { guestMayRun: () => void log.push("memory: guest may run"), running: false } as unknown as DestEngine["mem"];
  eng.guest = {
    resume: (state: Uint8Array) => {
      log.push(`RESUME written (${state.length} bytes)`);
      return new Promise<void>((r) => (resolveResume = r));
    },
  } as unknown as DestEngine["guest"];
  return { eng, log, sent, finish: () => resolveResume() };
}

const hello: Message<Uint8Array> = { type: "hello", version: PROTOCOL_VERSION, pageSize: 4096, pageCount: 8, mode: "postcopy", capabilities: Capability.Postcopy | Capability.UrgentChannel };

describe("the destination's resume order", () => {
  it("writes the RESUME right after the memory allows running, then arms the lane and the receivers, all before the switchover's handling returns", async () => {
    const { eng, log, sent, finish } = setup();
    eng.dispatch({ kind: "message", msg: hello, channel: "bulk" });
    expect(sent.map((m) => m.type)).toEqual(["helloAck"]);
    eng.dispatch({ kind: "message", msg: { type: "switchover", stale: new Uint32Array(0), cpuState: new Uint8Array(72) }, channel: "bulk" });
    expect(log).toEqual(["memory: guest may run", "RESUME written (72 bytes)", "lane armed", "bulk running"]);
    // The source hears of it only once the guest's RESUME was answered.
    expect(sent.map((m) => m.type)).toEqual(["helloAck"]);
    finish();
    await new Promise((r) => setImmediate(r));
    expect(log.slice(4)).toEqual(["window closed"]);
    expect(sent.map((m) => m.type)).toEqual(["helloAck", "resumed"]);
  });
});

describe("the destination's rehearsal (dest-rehearsal.ts)", () => {
  it("takes a throwaway DestEngine over stand-ins from the hello to `resumed`, each run", async () => {
    const r = await rehearseDestEngine((links, o) => new DestEngine(links, o), resolveOptions({ mode: "postcopy" }), 4096);
    expect(r.resumed).toEqual([true, true, true]);
  });
});
