/** The wire format: every message round-trips, sizes are exact, and malformed bytes are refused with a reason. */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Bitmap, decodeMessage, encodedSize, encodeMessage, FrameDecoder, HEADER_BYTES, MODES, ProtocolError, type Message } from "../src/engine/index.js";
import { pagesMsg } from "./support/pages.js";

const PAGE = 512;
const u32 = fc.nat({ max: 2 ** 32 - 1 });
const text = fc.string({ maxLength: 40, unit: "grapheme" });

const messageArb: fc.Arbitrary<Message<Uint8Array>> = fc.oneof(
  fc.record({ type: fc.constant("hello" as const), version: fc.nat(65535), capabilities: u32, pageSize: u32, pageCount: u32, mode: fc.constantFrom(...MODES) }),
  fc.record({ type: fc.constant("helloAck" as const), version: fc.nat(65535), capabilities: u32 }),
  fc.record({
    type: fc.constant("pages" as const),
    entries: fc.array(fc.record({ page: u32, data: fc.option(fc.uint8Array({ minLength: PAGE, maxLength: PAGE }), { nil: null }) }), { maxLength: 5 }),
  }).map((m) => pagesMsg(m.entries)),
  fc.record({ type: fc.constant("pageRequest" as const), page: u32 }),
  fc.record({ type: fc.constant("switchover" as const), stale: fc.array(u32, { maxLength: 20 }).map((a) => Uint32Array.from(a)), cpuState: fc.uint8Array({ maxLength: 64 }) }),
  fc.constant({ type: "resumed" as const }),
  fc.constant({ type: "complete" as const }),
  fc.record({ type: fc.constant("recover" as const), resumed: fc.boolean(), bulkBytes: fc.maxSafeNat(), received: fc.uint8Array({ maxLength: 64 }) }),
  fc.record({ type: fc.constant("cancel" as const), reason: text }),
  fc.record({ type: fc.constant("error" as const), code: fc.nat(65535), reason: text }),
  fc.record({ type: fc.constant("report" as const), json: text }),
);

/** Typed arrays compare by content after a plain-object conversion. */
const plain = (m: unknown) => JSON.parse(JSON.stringify(m, (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Uint8Array) : v)));

describe("codec", () => {
  it("round-trips every message, with the size encodedSize predicts", () => {
    fc.assert(
      fc.property(messageArb, (msg) => {
        const frame = encodeMessage(msg, PAGE);
        expect(frame.length).toBe(encodedSize(msg, PAGE));
        expect(plain(decodeMessage(frame, PAGE))).toEqual(plain(msg));
      }),
    );
  });

  it("reassembles a stream cut at any points", () => {
    fc.assert(
      fc.property(fc.array(messageArb, { minLength: 1, maxLength: 6 }), fc.array(fc.nat(), { maxLength: 8 }), (raw, cuts) => {
        const msgs = raw.map((m) => (m.type === "hello" ? { ...m, pageSize: PAGE } : m));
        const stream = Buffer.concat(msgs.map((m) => encodeMessage(m, PAGE)));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const d = new FrameDecoder(PAGE);
        const out: Message<Uint8Array>[] = [];
        let from = 0;
        for (const p of [...points, stream.length]) {
          out.push(...d.push(stream.subarray(from, p)));
          from = p;
        }
        expect(plain(out)).toEqual(plain(msgs));
        expect(d.buffered).toBe(0);
      }),
    );
  });

  it("takes a stream one byte at a time", () => {
    const msgs: Message<Uint8Array>[] = [
      { type: "hello", version: 1, capabilities: 7, pageSize: PAGE, pageCount: 9, mode: "postcopy" },
      pagesMsg([{ page: 3, data: new Uint8Array(PAGE).fill(7) }, { page: 4, data: null }]),
      { type: "complete" },
    ];
    const stream = Buffer.concat(msgs.map((m) => encodeMessage(m, PAGE)));
    const d = new FrameDecoder(PAGE);
    const out: Message<Uint8Array>[] = [];
    for (let i = 0; i < stream.length; i++) out.push(...d.push(stream.subarray(i, i + 1)));
    expect(plain(out)).toEqual(plain(msgs));
    expect(d.buffered).toBe(0);
  });

  it("refuses any corruption of a frame with a ProtocolError, never garbage or a hang", () => {
    fc.assert(
      fc.property(messageArb, fc.nat(), fc.integer({ min: 1, max: 255 }), (msg, at, xor) => {
        const frame = Uint8Array.from(encodeMessage(msg, PAGE));
        const i = at % frame.length;
        frame[i] ^= xor;
        try {
          const back = decodeMessage(frame, PAGE);
          // Some flips land in free-form fields (a page's bytes, a number): still a well-formed message.
          expect(encodedSize(back, PAGE)).toBe(frame.length);
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
          expect((e as Error).message.length).toBeGreaterThan(10);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("names what is wrong", () => {
    const bad = (bytes: number[]) => () => decodeMessage(Uint8Array.from(bytes), PAGE);
    expect(bad([0x47, 0x45, 0x54, 0x20, 0, 0, 0, 0])).toThrow(/bad frame magic 0x4547/);
    expect(bad([0x50, 0x50, 99, 0, 0, 0, 0, 0])).toThrow(/unknown message tag 99/);
    expect(bad([0x50, 0x50, 4, 0, 2, 0, 0, 0, 1, 2])).toThrow(/pageRequest: truncated at page/);
    expect(bad([0x50, 0x50, 4, 0, 5, 0, 0, 0, 1, 2, 3, 4, 5])).toThrow(/payload of 5 bytes exceeds the limit of 4 for tag 4/);
    expect(bad([0x50, 0x50, 3, 0, 5, 0, 0, 0, 0, 0, 0, 0, 9])).toThrow(/1 unexpected trailing bytes/);
    expect(bad([0x50, 0x50, 3, 0, 4, 0, 0, 0, 255, 255, 255, 255])).toThrow(/count 4294967295 exceeds the limit of 256 entries/);
    expect(bad([0x50, 0x50, 1, 0, 255, 255, 255, 255])).toThrow(/exceeds the limit/);
    expect(bad([0x50, 0x50, 6, 0, 0, 0])).toThrow(/frame truncated/);
    expect(() => new FrameDecoder(0).push(encodeMessage(pagesMsg([]), PAGE))).toThrow(/before the handshake/);
    expect(HEADER_BYTES).toBe(8);
  });
});

describe("bitmap", () => {
  it("agrees with a set, and survives its byte form", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.array(fc.tuple(fc.boolean(), fc.nat()), { maxLength: 200 }), fc.nat(), (size, ops, from) => {
        const b = new Bitmap(size);
        const model = new Set<number>();
        for (const [set, x] of ops) {
          const i = x % size;
          if (set) {
            expect(b.set(i)).toBe(!model.has(i));
            model.add(i);
          } else {
            expect(b.clear(i)).toBe(model.has(i));
            model.delete(i);
          }
        }
        expect(b.count).toBe(model.size);
        expect([...b]).toEqual([...model].sort((x, y) => x - y));
        const f = from % size;
        const sorted = [...model].sort((x, y) => x - y);
        expect(b.nextSet(f)).toBe(sorted.find((i) => i >= f) ?? -1);
        let clear = -1;
        for (let i = f; i < size; i++) if (!model.has(i)) { clear = i; break; }
        expect(b.nextClear(f)).toBe(clear);
        const back = Bitmap.fromBytes(b.toBytes(), size);
        expect([...back]).toEqual(sorted);
        expect(back.count).toBe(model.size);
        expect(Bitmap.full(size).count).toBe(size);
      }),
    );
  });
});
