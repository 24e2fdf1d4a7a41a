/** A hand-made source for the hostile-peer tests: raw connections, frames written by hand, what comes back. */
import type { Socket } from "node:net";
import { encodeMessage } from "../../src/engine/codec.js";
import { FrameDecoder } from "../../src/engine/frame-decoder.js";
import { PROTOCOL_VERSION, type Message } from "../../src/engine/messages.js";
import { scaleWorkload } from "../../src/real/plan.js";
import type { Security } from "../../src/real/tls.js";
import { connectChannel } from "../../src/real/transport.js";
import { toGuestConfig } from "../../src/workload/guest-config.js";
import { loadWorkload } from "../../src/workload/parse.js";

export const PS = 4096;

/** Distinct in its first 8 hex digits: the log names a session by them. */
export function sessionId(n: number): string {
  return n.toString(16).padStart(8, "0") + "0".repeat(24);
}

/** Session info for an idle guest of `memBytes`, as a source would send it. */
export function infoFor(memBytes: number, name = "idle"): string {
  const w = scaleWorkload(loadWorkload("examples/idle.json"), memBytes);
  return JSON.stringify({ workload: name, config: toGuestConfig(w, 1), seed: 1, steps: 100, mode: "postcopy" });
}

export function hello(pageCount: number): Uint8Array {
  return encodeMessage({ type: "hello", version: PROTOCOL_VERSION, capabilities: 7, pageSize: PS, pageCount, mode: "postcopy" }, PS);
}

/** What a socket receives, decoded, and when it closes. */
export function watch(socket: Socket): { frames: Message<Uint8Array>[]; closed: Promise<void>; first: (type: string) => Promise<Message<Uint8Array>> } {
  const d = new FrameDecoder(PS);
  const frames: Message<Uint8Array>[] = [];
  const waiters: [string, (m: Message<Uint8Array>) => void][] = [];
  socket.on("data", (c: Buffer) => {
    try {
      for (const m of d.push(c)) {
        frames.push(m);
        for (const w of waiters.splice(0)) {
          if (w[0] === m.type) w[1](m);
          else waiters.push(w);
        }
      }
    } catch {
      socket.destroy();
    }
  });
  socket.on("error", () => undefined);
  const closed = new Promise<void>((r) => socket.once("close", () => r()));
  const first = (type: string) =>
    new Promise<Message<Uint8Array>>((resolve) => {
      const got = frames.find((m) => m.type === type);
      if (got !== undefined) resolve(got);
      else waiters.push([type, resolve]);
    });
  return { frames, closed, first };
}

/** Opens a session's two connections; `info` on bulk. */
export async function openPair(port: number, session: string, info: string, security?: Security): Promise<{ urgent: Socket; bulk: Socket }> {
  const urgent = await connectChannel("127.0.0.1", port, { channel: "urgent", session, epoch: 0, info: "" }, 5000, undefined, security);
  const bulk = await connectChannel("127.0.0.1", port, { channel: "bulk", session, epoch: 0, info }, 5000, undefined, security);
  return { urgent, bulk };
}

/** Writes `total` bytes of `chunk` repeatedly, honouring backpressure, until done or the socket fails. The same buffer each time: the test's own memory does not grow. */
export async function flood(socket: Socket, chunk: Buffer, total: number): Promise<number> {
  let sent = 0;
  while (sent < total && !socket.destroyed) {
    const ok = socket.write(chunk, () => undefined);
    sent += chunk.length;
    if (!ok) await new Promise<void>((r) => {
      socket.once("drain", r);
      socket.once("close", r);
    });
  }
  return sent;
}

/** Heap and buffers of this process (the agent under test runs in it). */
export function memoryNow(): number {
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}
