/**
 * The destination's own part of the switchover rehearsed (issue 9): the
 * session's DestEngine — its dispatch, its effects and its resume, the code
 * between the switchover frame's arrival and the guest's RESUME — run on a
 * throwaway instance over links, a guest and a memory that do nothing, a
 * few times, before the real engine answers the hello. Like the engines'
 * rehearsal (switchover-rehearsal.ts) it is there so that the real
 * switchover runs code that is compiled and warm: run cold, that stretch
 * cost a few hundred µs of JS inside the downtime. Nothing here reaches a
 * socket, a guest or guest memory.
 */
import { Destination } from "../engine/destination.js";
import { Capability, PROTOCOL_VERSION, type Message } from "../engine/messages.js";
import type { MigrationOptions } from "../engine/options.js";
import type { DestEngine, DestEngineLinks, DestEngineOptions } from "./dest-engine.js";

/** Three runs: V8 compiles a function at its first call and tiers it up after a few (measured: 0.32, 0.16, 0.04 ms). */
const RUNS = 3;
const PAGES = 8;

export interface DestRehearsal {
  /** Per run: whether the engine resumed the stand-in guest and said `resumed` to the stand-in source. */
  resumed: boolean[];
}

/** `make` is DestEngine's constructor (passed in: this module and dest-engine.ts would otherwise import each other). */
export async function rehearseDestEngine(make: (links: DestEngineLinks, o: DestEngineOptions) => DestEngine, opts: MigrationOptions, pageSize: number): Promise<DestRehearsal> {
  const resumed: boolean[] = [];
  for (let i = 0; i < RUNS; i++) {
    const sent: string[] = [];
    let ended = false;
    const links = {
      id: "rehearsal",
      log: () => undefined,
      ended: () => ended,
      send: (_c: unknown, m: Message<Uint8Array>) => void sent.push(m.type),
      buffered: () => 0,
      nativeBulk0: () => null,
      nativeBulks: () => [{ setRunning: () => undefined }],
      layout: () => ({ pageSize, pageCount: PAGES }),
      lane: { arm: () => undefined, announce: (m: Message<Uint8Array>) => m },
      reports: { switchoverAt: null, frameAt: null, resumedAt: null, startProgress: () => Promise.resolve(), afterComplete: () => Promise.resolve() },
      trace: null,
      finish: () => void (ended = true),
      refuse: () => void (ended = true),
      endSwitchoverWindow: () => undefined,
    } as unknown as DestEngineLinks;
    const eng = make(links, { reconnectWaitMs: 1000 });
    eng.engine = new Destination<Uint8Array>(opts, { expect: { pageSize, pageCount: PAGES } });
    eng.mem = { guestMayRun: () => undefined, running: false, installMany: () => undefined, wake: () => undefined, drop: () => undefined, stopFaults: () => undefined, complete: () => undefined } as unknown as DestEngine["mem"];
    eng.guest = { resume: () => Promise.resolve() } as unknown as DestEngine["guest"];
    const hello: Message<Uint8Array> = { type: "hello", version: PROTOCOL_VERSION, pageSize, pageCount: PAGES, mode: opts.mode, capabilities: Capability.Postcopy | Capability.UrgentChannel };
    eng.dispatch({ kind: "message", msg: hello, channel: "bulk" });
    eng.dispatch({ kind: "message", msg: { type: "switchover", stale: new Uint32Array(0), cpuState: new Uint8Array(72) }, channel: "bulk" });
    // The resume's answer (a promise's then): one turn of microtasks.
    await Promise.resolve();
    await Promise.resolve();
    ended = true;
    eng.clearTimer();
    resumed.push(sent.includes("resumed"));
  }
  return { resumed };
}
