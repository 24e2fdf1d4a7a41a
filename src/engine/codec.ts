/**
 * The wire format. Every frame is an 8-byte header followed by its payload:
 *
 *   0  u16 magic 0x5050 ("PP")   2  u8 tag (MessageTag)   3  u8 reserved (0)
 *   4  u32 payload length
 *
 * All integers are little-endian. Decoding checks every length against what
 * is left before reading, so malformed bytes raise a ProtocolError naming the
 * problem instead of reading garbage. What a peer can make the decoder hold
 * is bounded by the layout (see maxPayloadBytes): a frame is refused from its
 * header alone, before its payload is buffered.
 */
import { MessageTag, type Message, type Mode } from "./messages.js";

export const FRAME_MAGIC = 0x5050;
export const HEADER_BYTES = 8;
/** Bytes each page entry adds besides its payload: page number (u32) and flags (u8). */
export const PAGE_ENTRY_OVERHEAD = 5;
/** Largest payload of any frame, whatever the layout: what a frame of unknown layout may carry at most. */
export const MAX_PAYLOAD_BYTES = 256 * 1024 * 1024;
/**
 * Page entries one pages message may carry. The engine's background batches
 * take all of it at 4 KiB pages (batchPages, 256 by default); the bound keeps a
 * frame to about a MiB at 4 KiB pages, and the objects decoding makes to a few
 * hundred per frame.
 */
export const MAX_PAGES_PER_MESSAGE = 256;
/** Reasons of cancel and error messages. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** The destination's report JSON (its final one lists every fault latency). */
export const MAX_REPORT_BYTES = 32 * 1024 * 1024;
/** Serialised vCPU state (48 bytes per vCPU today). */
export const MAX_CPU_STATE_BYTES = 1024 * 1024;

/** What the handshake fixed. pageCount 0: not known to this decoder (the bounds that need it fall back to MAX_PAYLOAD_BYTES). */
export interface Layout {
  pageSize: number;
  pageCount: number;
}

const PAGE_FLAG_ZERO = 1;
const MODE_CODES: readonly Mode[] = ["precopy", "postcopy", "hybrid"];

export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** The encoded size of a message, without encoding it (the simulator's byte count). */
export function encodedSize(msg: Message<unknown>, pageSize: number): number {
  switch (msg.type) {
    case "hello":
      return HEADER_BYTES + 16;
    case "helloAck":
      return HEADER_BYTES + 8;
    case "pages": {
      const data = msg.data;
      let n = HEADER_BYTES + 4 + data.length * PAGE_ENTRY_OVERHEAD;
      for (let i = 0; i < data.length; i++) if (data[i] !== null) n += pageSize;
      return n;
    }
    case "pageRequest":
      return HEADER_BYTES + 4;
    case "switchover":
      return HEADER_BYTES + 8 + msg.stale.length * 4 + msg.cpuState.length;
    case "resumed":
    case "complete":
      return HEADER_BYTES;
    case "recover":
      return HEADER_BYTES + 16 + msg.received.length;
    case "cancel":
      return HEADER_BYTES + utf8Length(msg.reason);
    case "report":
      return HEADER_BYTES + utf8Length(msg.json);
    case "error":
      return HEADER_BYTES + 2 + utf8Length(msg.reason);
  }
}

function utf8Length(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Encodes a message carrying real page bytes into one frame. */
export function encodeMessage(msg: Message<Uint8Array>, pageSize: number): Uint8Array {
  const size = encodedSize(msg, pageSize);
  const buf = Buffer.alloc(size);
  buf.writeUInt16LE(FRAME_MAGIC, 0);
  buf.writeUInt8(MessageTag[tagName(msg.type)], 2);
  buf.writeUInt32LE(size - HEADER_BYTES, 4);
  let o = HEADER_BYTES;
  switch (msg.type) {
    case "hello":
      buf.writeUInt16LE(msg.version, o);
      buf.writeUInt8(MODE_CODES.indexOf(msg.mode), o + 2);
      buf.writeUInt32LE(msg.capabilities >>> 0, o + 4);
      buf.writeUInt32LE(msg.pageSize, o + 8);
      buf.writeUInt32LE(msg.pageCount, o + 12);
      break;
    case "helloAck":
      buf.writeUInt16LE(msg.version, o);
      buf.writeUInt32LE(msg.capabilities >>> 0, o + 4);
      break;
    case "pages":
      if (msg.pages.length > MAX_PAGES_PER_MESSAGE) throw new RangeError(`a pages message carries at most ${MAX_PAGES_PER_MESSAGE} entries, got ${msg.pages.length}`);
      if (msg.data.length !== msg.pages.length) throw new RangeError(`a pages message has ${msg.pages.length} page numbers but ${msg.data.length} contents`);
      buf.writeUInt32LE(msg.pages.length, o);
      o += 4;
      for (let i = 0; i < msg.pages.length; i++) {
        const data = msg.data[i];
        buf.writeUInt32LE(msg.pages[i], o);
        buf.writeUInt8(data === null ? PAGE_FLAG_ZERO : 0, o + 4);
        o += PAGE_ENTRY_OVERHEAD;
        if (data !== null) {
          if (data.length !== pageSize) throw new RangeError(`page ${msg.pages[i]} has ${data.length} bytes, page size is ${pageSize}`);
          buf.set(data, o);
          o += pageSize;
        }
      }
      break;
    case "pageRequest":
      buf.writeUInt32LE(msg.page, o);
      break;
    case "switchover":
      buf.writeUInt32LE(msg.stale.length, o);
      o += 4;
      for (const p of msg.stale) {
        buf.writeUInt32LE(p, o);
        o += 4;
      }
      buf.writeUInt32LE(msg.cpuState.length, o);
      buf.set(msg.cpuState, o + 4);
      break;
    case "resumed":
    case "complete":
      break;
    case "recover":
      buf.writeUInt8(msg.resumed ? 1 : 0, o);
      buf.writeUInt32LE(msg.bulkBytes % 2 ** 32, o + 4);
      buf.writeUInt32LE(Math.floor(msg.bulkBytes / 2 ** 32), o + 8);
      buf.writeUInt32LE(msg.received.length, o + 12);
      buf.set(msg.received, o + 16);
      break;
    case "cancel":
      buf.write(msg.reason, o, "utf8");
      break;
    case "report":
      buf.write(msg.json, o, "utf8");
      break;
    case "error":
      buf.writeUInt16LE(msg.code, o);
      buf.write(msg.reason, o + 2, "utf8");
      break;
  }
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

function tagName(type: Message<unknown>["type"]): keyof typeof MessageTag {
  return (type.charAt(0).toUpperCase() + type.slice(1)) as keyof typeof MessageTag;
}

/** Reads fields from one frame's payload, refusing to read past its end. */
class PayloadReader {
  private o = 0;
  constructor(
    private readonly buf: Buffer,
    private readonly what: string,
  ) {}
  private need(n: number, field: string): void {
    if (this.o + n > this.buf.length) {
      throw new ProtocolError(`${this.what}: truncated at ${field} (needs ${n} bytes at offset ${this.o}, payload has ${this.buf.length})`);
    }
  }
  u8(field: string): number {
    this.need(1, field);
    return this.buf.readUInt8(this.o++);
  }
  u16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16LE(this.o);
    this.o += 2;
    return v;
  }
  u32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32LE(this.o);
    this.o += 4;
    return v;
  }
  bytes(n: number, field: string): Uint8Array {
    this.need(n, field);
    // A view, not a copy: a frame's bytes belong to it alone (see FrameDecoder),
    // and copying every page costs more than the rest of decoding.
    const v = new Uint8Array(this.buf.buffer, this.buf.byteOffset + this.o, n);
    this.o += n;
    return v;
  }
  zero8(field: string): void {
    const v = this.u8(field);
    if (v !== 0) throw new ProtocolError(`${this.what}: ${field} byte is ${v}, must be 0`);
  }
  zero16(field: string): void {
    const v = this.u16(field);
    if (v !== 0) throw new ProtocolError(`${this.what}: ${field} field is ${v}, must be 0`);
  }
  rest(): Buffer {
    const v = this.buf.subarray(this.o);
    this.o = this.buf.length;
    return v;
  }
  end(): void {
    if (this.o !== this.buf.length) throw new ProtocolError(`${this.what}: ${this.buf.length - this.o} unexpected trailing bytes`);
  }
}

/**
 * Decodes one frame's payload. `pageSize` is needed for page payloads; before
 * the handshake has fixed it, pass 0 and a pages message is refused.
 */
export function decodePayload(tag: number, payload: Buffer, pageSize: number): Message<Uint8Array> {
  switch (tag) {
    case MessageTag.Hello: {
      const r = new PayloadReader(payload, "hello");
      const version = r.u16("version");
      const modeCode = r.u8("mode");
      r.zero8("reserved");
      const capabilities = r.u32("capabilities");
      const ps = r.u32("pageSize");
      const pageCount = r.u32("pageCount");
      r.end();
      const mode = MODE_CODES[modeCode];
      if (mode === undefined) throw new ProtocolError(`hello: unknown mode code ${modeCode}`);
      return { type: "hello", version, capabilities, pageSize: ps, pageCount, mode };
    }
    case MessageTag.HelloAck: {
      const r = new PayloadReader(payload, "helloAck");
      const version = r.u16("version");
      r.zero16("reserved");
      const capabilities = r.u32("capabilities");
      r.end();
      return { type: "helloAck", version, capabilities };
    }
    case MessageTag.Pages: {
      if (pageSize <= 0) throw new ProtocolError("pages: received before the handshake set the page size");
      const r = new PayloadReader(payload, "pages");
      const count = r.u32("count");
      if (count > MAX_PAGES_PER_MESSAGE) throw new ProtocolError(`pages: count ${count} exceeds the limit of ${MAX_PAGES_PER_MESSAGE} entries per message`);
      if (count * PAGE_ENTRY_OVERHEAD > payload.length) throw new ProtocolError(`pages: count ${count} does not fit a payload of ${payload.length} bytes`);
      const pages = new Uint32Array(count);
      const data: (Uint8Array | null)[] = new Array<Uint8Array | null>(count);
      for (let i = 0; i < count; i++) {
        pages[i] = r.u32(`entry ${i} page`);
        const flags = r.u8(`entry ${i} flags`);
        if (flags & ~PAGE_FLAG_ZERO) throw new ProtocolError(`pages: entry ${i} has unknown flags 0x${flags.toString(16)}`);
        data[i] = flags & PAGE_FLAG_ZERO ? null : r.bytes(pageSize, `entry ${i} data`);
      }
      r.end();
      return { type: "pages", pages, data };
    }
    case MessageTag.PageRequest: {
      const r = new PayloadReader(payload, "pageRequest");
      const page = r.u32("page");
      r.end();
      return { type: "pageRequest", page };
    }
    case MessageTag.Switchover: {
      const r = new PayloadReader(payload, "switchover");
      const n = r.u32("stale count");
      if (n * 4 > payload.length) throw new ProtocolError(`switchover: stale count ${n} does not fit a payload of ${payload.length} bytes`);
      const stale = new Uint32Array(n);
      for (let i = 0; i < n; i++) stale[i] = r.u32(`stale[${i}]`);
      const cpuLen = r.u32("cpu state length");
      const cpuState = r.bytes(cpuLen, "cpu state");
      r.end();
      return { type: "switchover", stale, cpuState };
    }
    case MessageTag.Resumed:
    case MessageTag.Complete: {
      const type = tag === MessageTag.Resumed ? "resumed" : "complete";
      new PayloadReader(payload, type).end();
      return { type };
    }
    case MessageTag.Recover: {
      const r = new PayloadReader(payload, "recover");
      const resumed = r.u8("resumed");
      if (resumed > 1) throw new ProtocolError(`recover: resumed flag must be 0 or 1, got ${resumed}`);
      r.zero8("reserved");
      r.zero16("reserved");
      const low = r.u32("bulk bytes");
      const high = r.u32("bulk bytes");
      if (high >= 2 ** 21) throw new ProtocolError(`recover: bulk byte count ${high} * 2^32 is beyond 2^53`);
      const len = r.u32("bitmap length");
      const received = r.bytes(len, "bitmap");
      r.end();
      return { type: "recover", resumed: resumed === 1, bulkBytes: high * 2 ** 32 + low, received };
    }
    case MessageTag.Cancel:
      return { type: "cancel", reason: decodeUtf8(payload, "cancel") };
    case MessageTag.Report:
      return { type: "report", json: decodeUtf8(payload, "report") };
    case MessageTag.Error: {
      const r = new PayloadReader(payload, "error");
      const code = r.u16("code");
      return { type: "error", code, reason: decodeUtf8(r.rest(), "error") };
    }
    default:
      throw new ProtocolError(`unknown message tag ${tag}`);
  }
}

function decodeUtf8(b: Buffer, what: string): string {
  try {
    // ignoreBOM: a leading U+FEFF is text like any other, so a reason round-trips exactly.
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(b);
  } catch {
    throw new ProtocolError(`${what}: text is not valid UTF-8`);
  }
}
