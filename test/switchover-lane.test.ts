/**
 * The switchover's lane (issue 9): always bulk, behind what went before it.
 * After pre-copy pages (pre-copy, hybrid) every page dirtied before the
 * pause is either sent again ahead of it or named stale by it, so both are
 * settled before the guest runs; in pure post-copy nothing but the
 * handshake precedes it. (Pure post-copy's switchover on the urgent lane —
 * fewer hops — was measured and not faster on this host: docs/real.md
 * "Downtime".) The engine properties (engine-properties.test.ts) deliver
 * the lanes in any order and check the destination never holds a stale page.
 */
import { describe, expect, it } from "vitest";
import type { Message, Mode } from "../src/engine/messages.js";
import { resolveOptions } from "../src/engine/options.js";
import { Source } from "../src/engine/source.js";

const PAGES = 8;

/** A source through its handshake; its guest's dirty log is `dirty` once the pause is asked for. */
function source(mode: Mode, dirty: number[]): { s: Source<number>; paused: () => void } {
  let pausing = false;
  const s = new Source<number>(resolveOptions({ mode, urgentChannel: true, batchPages: 4, hybridRounds: 1, downtimeLimitMs: 300 }), { pageSize: 4096, pageCount: PAGES }, {
    readPage: (p) => p + 1,
    collectDirty: () => Uint32Array.from(pausing ? dirty : []),
  });
  s.start(0);
  expect(s.pollTransmit("bulk", 0)?.type).toBe("hello");
  s.handle({ kind: "message", msg: { type: "helloAck", version: 1, capabilities: 7 } }, 10);
  return {
    s,
    paused: () => {
      pausing = true;
      s.handle({ kind: "guestPaused", cpuState: new Uint8Array(1) }, 1000);
    },
  };
}

/** Pulls bulk pages until the engine asks for the pause; returns the pages pulled. */
function roundUntilPause(s: Source<number>): number[] {
  const pages: number[] = [];
  for (let t = 20; t < 900; t += 10) {
    const a = s.pollAction();
    if (a?.kind === "pauseGuest") return pages;
    const m = s.pollTransmit("bulk", t);
    if (m?.type === "pages") pages.push(...m.pages);
  }
  throw new Error("no pause asked for");
}

describe("the switchover's lane", () => {
  it("pure post-copy: bulk, first after the handshake, before any background page", () => {
    const { s, paused } = source("postcopy", []);
    expect(s.pollAction()).toEqual({ kind: "pauseGuest" });
    paused();
    expect(s.pollTransmit("urgent", 1000)).toBeNull();
    expect(s.pollTransmit("bulk", 1000)?.type).toBe("switchover");
    expect(s.pollTransmit("bulk", 1000)?.type).toBe("pages");
  });

  for (const mode of ["precopy", "hybrid"] as const) {
    it(`${mode}: bulk, behind the pages dirtied before the pause; never urgent`, () => {
      const { s, paused } = source(mode, [3, 5]);
      expect(roundUntilPause(s).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
      paused();
      expect(s.pollTransmit("urgent", 1000)).toBeNull();
      const bulk: Message<number>[] = [];
      for (let m = s.pollTransmit("bulk", 1000); m !== null; m = s.pollTransmit("bulk", 1000)) {
        bulk.push(m);
        if (m.type === "switchover") break;
        expect(s.pollTransmit("urgent", 1000)).toBeNull();
      }
      const sw = bulk.findIndex((m) => m.type === "switchover");
      expect(sw).toBeGreaterThanOrEqual(0);
      const before = bulk.slice(0, sw).flatMap((m) => (m.type === "pages" ? Array.from(m.pages) : []));
      // Each page dirtied before the pause is either sent again ahead of the switchover or named stale by it
      // (hybrid's post-copy drops it at the destination): either way settled before the guest runs.
      const stale = Array.from((bulk[sw] as Message<number> & { type: "switchover" }).stale);
      expect([...before, ...stale].sort((a, b) => a - b)).toEqual([3, 5]);
    });
  }
});
