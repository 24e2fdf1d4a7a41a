/**
 * Fuzzing what a peer reaches first: the frame decoder (under the layouts a
 * destination has before and after its handshake), the preamble parser, and
 * the agent's framing (FramedSocket over a stand-in socket). Inputs are
 * seeded: random bytes, valid streams with bytes flipped, inserted or cut,
 * headers with random tags and lengths, pages frames with forged counts, all
 * fed in random chunks. Every input must end in messages or a ProtocolError
 * (for the framing: one `down`), and the decoder may never hold more than
 * the largest frame its layout allows. Used by test/fuzz.test.ts (bounded)
 * and bench/fuzz.ts (long runs).
 */
import { EventEmitter } from "node:events";
import type { Socket } from "node:net";
import seedrandom from "seedrandom";
import { encodeMessage, HEADER_BYTES, MAX_PAGES_PER_MESSAGE, ProtocolError, type Layout } from "../src/engine/codec.js";
import { FrameDecoder, maxPayloadBytes } from "../src/engine/frame-decoder.js";
import { MessageTag, MODES, type Message } from "../src/engine/messages.js";
import { encodePreamble, parsePreamble } from "../src/real/preamble.js";
import { FramedSocket } from "../src/real/transport.js";

const PS = 4096;
const LAYOUTS: Layout[] = [
  { pageSize: 0, pageCount: 0 }, // before the handshake
  { pageSize: PS, pageCount: 0 }, // a source's decoder: page size only
  { pageSize: PS, pageCount: 4096 }, // a destination after its hello
];
const TAGS = Object.values(MessageTag);

export interface FuzzReport {
  target: string;
  inputs: number;
  bytes: number;
  messages: number;
  /** Inputs that ended in a ProtocolError (or a `down`). */
  refused: number;
  /** Anything else: must be empty. */
  failures: string[];
  /** Per-input time, µs. */
  p50_us: number;
  p99_us: number;
  max_us: number;
  /** Most bytes a decoder held between frames, against its layout's bound. */
  max_buffered: number;
  buffered_bound_violations: number;
}

type Rng = () => number;
const int = (r: Rng, n: number) => Math.floor(r() * n);

function randomMessage(r: Rng): Message<Uint8Array> {
  switch (int(r, 8)) {
    case 0:
      return { type: "hello", version: int(r, 3), capabilities: int(r, 8), pageSize: PS, pageCount: int(r, 5000), mode: MODES[int(r, 3)] };
    case 1: {
      const n = int(r, 4);
      const pages = Uint32Array.from({ length: n }, () => int(r, 5000));
      return { type: "pages", pages, data: Array.from(pages, () => (r() < 0.5 ? null : new Uint8Array(PS).fill(int(r, 256)))) };
    }
    case 2:
      return { type: "pageRequest", page: int(r, 5000) };
    case 3:
      return { type: "switchover", stale: Uint32Array.from({ length: int(r, 8) }, () => int(r, 5000)), cpuState: new Uint8Array(int(r, 100)) };
    case 4:
      return { type: "recover", resumed: r() < 0.5, bulkBytes: int(r, 1e9), received: new Uint8Array(int(r, 512)) };
    case 5:
      return { type: "error", code: int(r, 5), reason: "\ufeffreason ✓ " + "x".repeat(int(r, 50)) };
    case 6:
      return { type: "report", json: JSON.stringify({ n: int(r, 100) }) };
    default:
      return r() < 0.5 ? { type: "complete" } : { type: "cancel", reason: "bye" };
  }
}

/** One input: bytes a peer might send. */
export function fuzzInput(r: Rng): Buffer {
  const kind = int(r, 4);
  if (kind === 0) {
    const b = Buffer.alloc(int(r, 2000));
    for (let i = 0; i < b.length; i++) b[i] = int(r, 256);
    if (r() < 0.5 && b.length >= 2) b.writeUInt16LE(0x5050, 0);
    return b;
  }
  if (kind === 2) {
    const b = Buffer.alloc(HEADER_BYTES + int(r, 600));
    b.writeUInt16LE(0x5050, 0);
    b.writeUInt8(r() < 0.8 ? TAGS[int(r, TAGS.length)] : int(r, 256), 2);
    b.writeUInt32LE(r() < 0.5 ? int(r, 2 ** 32) : int(r, b.length), 4);
    for (let i = HEADER_BYTES; i < b.length; i++) b[i] = int(r, 256);
    return b;
  }
  const msgs = Array.from({ length: 1 + int(r, 5) }, () => randomMessage(r));
  const b = Buffer.concat(msgs.map((m) => encodeMessage(m, PS)));
  if (kind === 3) {
    // A pages frame whose count is forged (the zero-page flood of issue 15).
    const p = Buffer.alloc(HEADER_BYTES + 4 + 5 * int(r, 400));
    p.writeUInt16LE(0x5050, 0);
    p.writeUInt8(MessageTag.Pages, 2);
    p.writeUInt32LE(p.length - HEADER_BYTES, 4);
    p.writeUInt32LE(r() < 0.5 ? int(r, 2 ** 32) : int(r, MAX_PAGES_PER_MESSAGE * 2), 8);
    for (let i = 12; i < p.length; i += 5) p[i + 4] = r() < 0.9 ? 1 : int(r, 256);
    return Buffer.concat([b, p]);
  }
  for (let k = int(r, 4); k > 0 && b.length > 0; k--) b[int(r, b.length)] ^= 1 + int(r, 255);
  if (r() < 0.2) return b.subarray(0, int(r, b.length));
  return b;
}

/** The input cut at random points. */
function chunks(r: Rng, b: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < b.length; ) {
    const n = r() < 0.3 ? 1 + int(r, 8) : 1 + int(r, 3000);
    out.push(b.subarray(o, o + n));
    o += n;
  }
  return out;
}

function largestFrame(l: Layout): number {
  return HEADER_BYTES + Math.max(...TAGS.map((t) => maxPayloadBytes(t, l)));
}

class Timing {
  private readonly us: Float64Array;
  private n = 0;
  constructor(inputs: number) {
    this.us = new Float64Array(inputs);
  }
  add(us: number): void {
    this.us[this.n++] = us;
  }
  summary(): { p50_us: number; p99_us: number; max_us: number } {
    const s = this.us.subarray(0, this.n).sort();
    const at = (q: number) => Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0);
    return { p50_us: at(0.5), p99_us: at(0.99), max_us: Math.round(s[s.length - 1] ?? 0) };
  }
}

function report(target: string): FuzzReport {
  return { target, inputs: 0, bytes: 0, messages: 0, refused: 0, failures: [], p50_us: 0, p99_us: 0, max_us: 0, max_buffered: 0, buffered_bound_violations: 0 };
}

/** Runs one input against a parser, timed: a ProtocolError is a refusal, anything else a failure. */
function feed(rep: FuzzReport, t: Timing, i: number, parse: () => void): void {
  const t0 = performance.now();
  try {
    parse();
  } catch (e) {
    if (e instanceof ProtocolError) rep.refused++;
    else if (rep.failures.length < 20) rep.failures.push(`input ${i}: ${String(e)}`);
  }
  t.add((performance.now() - t0) * 1000);
  rep.inputs++;
}

export function fuzzDecoder(inputs: number, seed: string): FuzzReport {
  const r = seedrandom(seed);
  const rep = report("FrameDecoder");
  const t = new Timing(inputs);
  for (let i = 0; i < inputs; i++) {
    const layout = LAYOUTS[int(r, LAYOUTS.length)];
    const bound = largestFrame(layout);
    const input = fuzzInput(r);
    const parts = chunks(r, input);
    rep.bytes += input.length;
    feed(rep, t, i, () => {
      const d = new FrameDecoder(layout.pageSize, layout.pageCount);
      for (const c of parts) {
        d.write(c);
        for (let m = d.next(); m !== null; m = d.next()) rep.messages++;
        rep.max_buffered = Math.max(rep.max_buffered, d.buffered);
        if (d.buffered > bound) rep.buffered_bound_violations++;
      }
    });
  }
  return { ...rep, ...t.summary() };
}

export function fuzzPreamble(inputs: number, seed: string): FuzzReport {
  const r = seedrandom(seed);
  const rep = report("parsePreamble");
  const t = new Timing(inputs);
  for (let i = 0; i < inputs; i++) {
    const good = encodePreamble({ channel: r() < 0.5 ? "bulk" : "urgent", session: "ab".repeat(16), epoch: int(r, 4), info: r() < 0.5 ? "" : JSON.stringify({ x: "y".repeat(int(r, 200)) }) });
    const b = r() < 0.2 ? fuzzInput(r) : Buffer.from(good);
    for (let k = int(r, 3); k > 0 && b.length > 0; k--) b[int(r, b.length)] ^= 1 + int(r, 255);
    const cut = r() < 0.3 ? b.subarray(0, int(r, b.length + 1)) : b;
    rep.bytes += cut.length;
    feed(rep, t, i, () => {
      if (parsePreamble(cut) !== null) rep.messages++;
    });
  }
  return { ...rep, ...t.summary() };
}

/** Enough of a net.Socket for FramedSocket: events in, pause/destroy recorded. */
class StandInSocket extends EventEmitter {
  remoteAddress = "192.0.2.1";
  remotePort = 7;
  writableLength = 0;
  closed = false;
  destroyed = false;
  private paused = false;
  setNoDelay(): this {
    return this;
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  isPaused(): boolean {
    return this.paused;
  }
  write(): boolean {
    return true;
  }
  end(): this {
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
}

export function fuzzFraming(inputs: number, seed: string): FuzzReport {
  const r = seedrandom(seed);
  const rep = report("FramedSocket");
  const t = new Timing(inputs);
  for (let i = 0; i < inputs; i++) {
    const layout = LAYOUTS[int(r, LAYOUTS.length)];
    const input = fuzzInput(r);
    const parts = chunks(r, input);
    rep.bytes += input.length;
    const socket = new StandInSocket();
    let downs = 0;
    const t0 = performance.now();
    try {
      const fs = new FramedSocket(socket as unknown as Socket, r() < 0.5 ? "bulk" : "urgent", layout.pageSize, { message: () => rep.messages++, down: () => downs++ });
      fs.decoder.setLayout(layout.pageSize, layout.pageCount);
      fs.start();
      const bound = largestFrame(layout);
      for (const c of parts) {
        socket.emit("data", c);
        rep.max_buffered = Math.max(rep.max_buffered, fs.decoder.buffered);
        if (fs.decoder.buffered > bound) rep.buffered_bound_violations++;
      }
      if (downs === 1 && socket.destroyed) rep.refused++; // a bad frame took it down
      socket.emit("close");
      if (downs !== 1 && rep.failures.length < 20) rep.failures.push(`input ${i}: ${downs} down calls`);
    } catch (e) {
      if (rep.failures.length < 20) rep.failures.push(`input ${i}: threw ${String(e)}`);
    }
    t.add((performance.now() - t0) * 1000);
    rep.inputs++;
  }
  return { ...rep, ...t.summary() };
}
