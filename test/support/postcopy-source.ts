/** A post-copy source driven past its handshake and switchover (the guest paused, the switchover pulled), for tests of what it sends next. */
import { expect } from "vitest";
import { resolveOptions, Source, type MigrationOptions } from "../../src/engine/index.js";

export function postcopySourcePastSwitchover(options: Partial<MigrationOptions>, pageSize: number, pageCount: number): Source<number> {
  const s = new Source<number>(resolveOptions({ mode: "postcopy", backgroundOrder: "linear", ...options }), { pageSize, pageCount }, {
    readPage: (p) => p + 1,
    collectDirty: () => new Uint32Array(0),
  });
  s.start(0);
  expect(s.pollTransmit("bulk", 0)?.type).toBe("hello");
  s.handle({ kind: "message", msg: { type: "helloAck", version: 1, capabilities: 7 } }, 10);
  expect(s.pollAction()).toEqual({ kind: "pauseGuest" });
  s.handle({ kind: "guestPaused", cpuState: new Uint8Array(1) }, 20);
  expect(s.pollTransmit("bulk", 20)?.type).toBe("switchover");
  return s;
}
