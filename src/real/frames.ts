/**
 * Splits a TCP byte stream into messages, like the engine's FrameDecoder,
 * with two differences that matter at hundreds of MiB/s:
 *
 * - chunks are kept in a list and joined once a whole frame is there (the
 *   engine's decoder concatenates its backlog with every chunk, and copies
 *   what is left after each push);
 * - `pages` frames are decoded here, their page data left as views into the
 *   frame (the engine's PayloadReader copies every page).
 *
 * Measured on 128 MiB of 32-page frames in 64 KiB chunks, warm: 1.2–1.5 µs
 * per page here, 3–5 µs with the engine's FrameDecoder — on the destination's
 * event loop, which also installs pages and answers faults, that is most of
 * the per-page budget.
 *
 * Every other frame goes to the engine's decodeMessage, so the wire format
 * keeps one definition; the pages layout and its checks below mirror
 * codec.ts (`u32 count`, then per entry `u32 page, u8 flags, data unless
 * flags & ZERO`), and test/real-transport.test.ts holds the two to the same
 * results. Remove this once the engine's decoder stops copying (see docs/real.md).
 */
import { decodeMessage, HEADER_BYTES, MAX_PAYLOAD_BYTES, PAGE_ENTRY_OVERHEAD, ProtocolError } from "../engine/codec.js";
import { MessageTag, type Message, type PageEntry } from "../engine/messages.js";

const FRAME_MAGIC = 0x5050;
const PAGE_FLAG_ZERO = 1;

export class StreamDecoder {
  private chunks: Buffer[] = [];
  private length = 0;

  constructor(public pageSize: number) {}

  get buffered(): number {
    return this.length;
  }

  push(chunk: Buffer): Message<Uint8Array>[] {
    this.chunks.push(chunk);
    this.length += chunk.length;
    const out: Message<Uint8Array>[] = [];
    while (this.length >= HEADER_BYTES) {
      const head = this.peek(HEADER_BYTES);
      const magic = head.readUInt16LE(0);
      if (magic !== FRAME_MAGIC) throw new ProtocolError(`bad frame magic 0x${magic.toString(16).padStart(4, "0")} (expected 0x5050): not a ppsim peer, or a corrupted stream`);
      if (head.readUInt8(3) !== 0) throw new ProtocolError(`frame header reserved byte is ${head.readUInt8(3)}, expected 0`);
      const len = head.readUInt32LE(4);
      if (len > MAX_PAYLOAD_BYTES) throw new ProtocolError(`frame payload of ${len} bytes exceeds the limit of ${MAX_PAYLOAD_BYTES}`);
      if (this.length < HEADER_BYTES + len) break;
      const frame = this.take(HEADER_BYTES + len);
      const msg = head.readUInt8(2) === MessageTag.Pages ? this.decodePages(frame) : decodeMessage(frame, this.pageSize);
      if (msg.type === "hello") this.pageSize = msg.pageSize;
      out.push(msg);
    }
    return out;
  }

  private decodePages(frame: Buffer): Message<Uint8Array> {
    const ps = this.pageSize;
    if (ps <= 0) throw new ProtocolError("pages: received before the handshake set the page size");
    const end = frame.length;
    let o = HEADER_BYTES;
    const need = (n: number, field: string): void => {
      if (o + n > end) throw new ProtocolError(`pages: truncated at ${field} (needs ${n} bytes at offset ${o - HEADER_BYTES}, payload has ${end - HEADER_BYTES})`);
    };
    need(4, "count");
    const count = frame.readUInt32LE(o);
    o += 4;
    if (count * PAGE_ENTRY_OVERHEAD > end - HEADER_BYTES) throw new ProtocolError(`pages: count ${count} does not fit a payload of ${end - HEADER_BYTES} bytes`);
    const pages: PageEntry<Uint8Array>[] = new Array(count);
    for (let i = 0; i < count; i++) {
      need(PAGE_ENTRY_OVERHEAD, `entry ${i} page`);
      const page = frame.readUInt32LE(o);
      const flags = frame.readUInt8(o + 4);
      o += PAGE_ENTRY_OVERHEAD;
      if (flags & ~PAGE_FLAG_ZERO) throw new ProtocolError(`pages: entry ${i} has unknown flags 0x${flags.toString(16)}`);
      let data: Uint8Array | null = null;
      if (!(flags & PAGE_FLAG_ZERO)) {
        need(ps, `entry ${i} data`);
        data = new Uint8Array(frame.buffer, frame.byteOffset + o, ps); // a view, as Uint8Array like the engine's
        o += ps;
      }
      pages[i] = { page, data };
    }
    if (o !== end) throw new ProtocolError(`pages: ${end - o} unexpected trailing bytes`);
    return { type: "pages", pages };
  }

  /** The first n bytes (n ≤ buffered), without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length >= n) return first;
    const parts: Buffer[] = [];
    for (let i = 0, got = 0; got < n; i++) {
      parts.push(this.chunks[i]);
      got += this.chunks[i].length;
    }
    return Buffer.concat(parts).subarray(0, n);
  }

  /** Consumes n bytes (n ≤ buffered) as one Buffer of its own (page views into it stay valid). */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let o = 0;
      let i = 0;
      for (; o < n; i++) {
        const c = this.chunks[i];
        const k = Math.min(c.length, n - o);
        c.copy(out, o, 0, k);
        o += k;
        if (k < c.length) {
          this.chunks[i] = c.subarray(k);
          break;
        }
      }
      // One splice for the chunks used up (a shift each would be quadratic in tiny chunks).
      this.chunks.splice(0, i);
    }
    this.length -= n;
    return out;
  }
}
