/**
 * The native receiver merges the pages notices of consecutive frames that JS
 * has not taken yet into one (bulk_receiver.cc Post): the destination engine
 * then gets one pages message for several frames. What it books must not
 * change: the same pages present, and the same bulk stream offset (the
 * recover message's bulkBytes, by which the source tells which of its frames
 * were lost with a link) as when each frame came as its own message.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { encodedSize } from "../src/engine/codec.js";
import { Destination } from "../src/engine/destination.js";
import { ALL_CAPABILITIES, PROTOCOL_VERSION, type Message, type PagesMsg } from "../src/engine/messages.js";
import { resolveOptions } from "../src/engine/options.js";
import { installedPages } from "../src/real/dataplane.js";

const PAGE = 4096;
const COUNT = 4096;

/** Frames of distinct pages (1..16 each, some zero pages), as the source's batches would be. */
const frames = fc
  .array(fc.array(fc.record({ page: fc.nat(COUNT - 1), zero: fc.boolean() }), { minLength: 1, maxLength: 16 }), { minLength: 1, maxLength: 16 })
  .map((fs) => {
    const seen = new Set<number>();
    return fs.map((f) => f.filter((e) => !seen.has(e.page) && (seen.add(e.page), true))).filter((f) => f.length > 0);
  })
  .filter((fs) => fs.length > 0);

type Frame = { page: number; zero: boolean }[];
const asNotice = (f: Frame): { pages: Uint32Array; zero: Uint8Array } => ({ pages: Uint32Array.from(f, (e) => e.page), zero: Uint8Array.from(f, (e) => (e.zero ? 1 : 0)) });

function merged(fs: Frame[]): PagesMsg<Uint8Array> {
  const all = fs.flat();
  const n = asNotice(all);
  return installedPages(n.pages, n.zero, fs.length, PAGE);
}

/** A destination past its hello, in post-copy, with the guest running; returns it and what it sent. */
function running(): Destination<Uint8Array> {
  const d = new Destination<Uint8Array>(resolveOptions({ mode: "postcopy" }));
  const hello: Message<Uint8Array> = { type: "hello", version: PROTOCOL_VERSION, capabilities: ALL_CAPABILITIES, pageSize: PAGE, pageCount: COUNT, mode: "postcopy" };
  d.handle({ kind: "message", msg: hello, channel: "bulk" }, 0);
  return d;
}

/** The bulk offset the destination would tell the source at a recovery. */
function recoverBytes(d: Destination<Uint8Array>): number {
  d.handle({ kind: "linkDown" }, 1);
  d.handle({ kind: "linkUp" }, 2);
  for (const ch of ["urgent", "bulk"] as const) {
    for (let m = d.pollTransmit(ch, 3); m !== null; m = d.pollTransmit(ch, 3)) if (m.type === "recover") return m.bulkBytes;
  }
  throw new Error("no recover message");
}

describe("merged pages notices", () => {
  it("carry the wire bytes of the frames they stand for", () => {
    fc.assert(
      fc.property(frames, (fs) => {
        const each = fs.reduce((a, f) => {
          const n = asNotice(f);
          return a + encodedSize(installedPages(n.pages, n.zero), PAGE);
        }, 0);
        const m = merged(fs);
        expect(m.wireBytes ?? encodedSize(m, PAGE)).toBe(each);
        expect(Array.from(m.pages)).toEqual(fs.flat().map((e) => e.page));
        if (fs.length === 1) expect(m.wireBytes).toBeUndefined();
      }),
    );
  });

  it("leave the destination's books as separate frames would: pages present and the bulk offset", () => {
    fc.assert(
      fc.property(frames, (fs) => {
        const a = running();
        const b = running();
        for (const f of fs) {
          const n = asNotice(f);
          a.handle({ kind: "message", msg: installedPages(n.pages, n.zero), channel: "bulk" }, 1);
        }
        b.handle({ kind: "message", msg: merged(fs), channel: "bulk" }, 1);
        for (const e of fs.flat()) expect(b.isPresent(e.page)).toBe(a.isPresent(e.page));
        expect(b.metrics.present).toEqual(a.metrics.present);
        expect(recoverBytes(b)).toBe(recoverBytes(a));
      }),
      { numRuns: 50 },
    );
  });
});
