/**
 * Frames out of a byte stream: the bounds a peer meets before any payload is
 * decoded (maxPayloadBytes), and the decoder that applies them.
 */
import { decodePayload, FRAME_MAGIC, HEADER_BYTES, MAX_CPU_STATE_BYTES, MAX_PAGES_PER_MESSAGE, MAX_PAYLOAD_BYTES, MAX_REPORT_BYTES, MAX_TEXT_BYTES, PAGE_ENTRY_OVERHEAD, ProtocolError, type Layout } from "./codec.js";
import { MessageTag, type Message } from "./messages.js";

const KNOWN_TAGS: ReadonlySet<number> = new Set(Object.values(MessageTag));

/**
 * The largest payload a frame with this tag may have under a layout: what the
 * largest legitimate message of that type needs, so that a peer cannot make
 * the decoder buffer more than that before the frame is refused.
 */
export function maxPayloadBytes(tag: number, layout: Layout): number {
  const { pageSize, pageCount } = layout;
  const known = pageCount > 0;
  switch (tag) {
    case MessageTag.Hello:
      return 16;
    case MessageTag.HelloAck:
      return 8;
    case MessageTag.Pages:
      // Before the handshake the decoder refuses pages anyway (after reading their count).
      return pageSize > 0 ? 4 + MAX_PAGES_PER_MESSAGE * (PAGE_ENTRY_OVERHEAD + pageSize) : 4;
    case MessageTag.PageRequest:
      return 4;
    case MessageTag.Switchover:
      return known ? 8 + 4 * pageCount + MAX_CPU_STATE_BYTES : MAX_PAYLOAD_BYTES;
    case MessageTag.Resumed:
    case MessageTag.Complete:
      return 0;
    case MessageTag.Recover:
      return known ? 16 + Math.ceil(pageCount / 8) : MAX_PAYLOAD_BYTES;
    case MessageTag.Cancel:
      return MAX_TEXT_BYTES;
    case MessageTag.Error:
      return 2 + MAX_TEXT_BYTES;
    case MessageTag.Report:
      return MAX_REPORT_BYTES;
    default:
      return 0; // refused as an unknown tag once its header is read
  }
}

/** A ProtocolError raised by `push`, with the messages decoded before the bad frame (they are the peer's last words). */
export class StreamError extends ProtocolError {
  override name = "ProtocolError";
  constructor(
    cause: ProtocolError,
    readonly decoded: Message<Uint8Array>[],
  ) {
    super(cause.message);
  }
}

/** Decodes exactly one whole frame (header + payload). */
export function decodeMessage(frame: Uint8Array, pageSize: number): Message<Uint8Array> {
  const d = new FrameDecoder(pageSize);
  const msgs = d.push(frame);
  if (msgs.length !== 1 || d.buffered !== 0) {
    throw new ProtocolError(d.buffered !== 0 ? `frame truncated: ${d.buffered} bytes of an incomplete frame` : `expected one frame, got ${msgs.length}`);
  }
  return msgs[0];
}

/**
 * Splits a byte stream into messages. `write` chunks as they arrive and take
 * messages one at a time with `next` (the owner may change the layout
 * between two messages: the handshake), or both at once with `push`. A
 * partial frame is kept until the rest comes, joining bytes only once a whole
 * frame is there (so many small chunks cost linear time, not quadratic); a
 * frame whose header is bad, or whose length exceeds what its type needs
 * under the layout, is refused as soon as its header is there. Page data and
 * other byte fields of the messages are views into the written chunks: a
 * chunk must not be modified once written (socket chunks never are).
 *
 * The layout comes only from the owner (`setLayout`, after it accepted a
 * hello), never from a hello the decoder happens to read.
 */
export class FrameDecoder {
  /** Unconsumed chunks from `head` on; consumed ones are dropped in bulk, not shifted one by one. */
  private chunks: Buffer[] = [];
  private head = 0;
  private size = 0;
  private layout: Layout;
  /** Bytes of the whole frames `next` returned (decoded), since this decoder began. */
  consumed = 0;
  constructor(pageSize: number, pageCount = 0) {
    this.layout = { pageSize, pageCount };
  }

  get pageSize(): number {
    return this.layout.pageSize;
  }
  set pageSize(ps: number) {
    this.layout = { ...this.layout, pageSize: ps };
  }

  setLayout(pageSize: number, pageCount: number): void {
    this.layout = { pageSize, pageCount };
  }

  get buffered(): number {
    return this.size;
  }

  write(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    this.size += chunk.byteLength;
  }

  /**
   * Checks the header of the first buffered frame, if it is there, and
   * returns that frame's total length (0: not even a header yet). Throws a
   * ProtocolError for a bad header.
   */
  check(): number {
    if (this.size < HEADER_BYTES) return 0;
    const head = this.peek(HEADER_BYTES);
    const magic = head.readUInt16LE(0);
    if (magic !== FRAME_MAGIC) throw new ProtocolError(`bad frame magic 0x${magic.toString(16).padStart(4, "0")} (expected 0x5050): not a ppsim peer, or a corrupted stream`);
    const tag = head.readUInt8(2);
    const reserved = head.readUInt8(3);
    if (reserved !== 0) throw new ProtocolError(`frame header reserved byte is ${reserved}, expected 0`);
    const len = head.readUInt32LE(4);
    if (!KNOWN_TAGS.has(tag)) throw new ProtocolError(`unknown message tag ${tag}`);
    const max = maxPayloadBytes(tag, this.layout);
    if (len > max) throw new ProtocolError(`frame payload of ${len} bytes exceeds the limit of ${max} for tag ${tag} (page size ${this.layout.pageSize}, ${this.layout.pageCount || "unknown"} pages)`);
    return HEADER_BYTES + len;
  }

  /** Whether a whole frame is buffered (its header checked). */
  hasFrame(): boolean {
    const n = this.check();
    return n > 0 && this.size >= n;
  }

  /** The next whole message, or null until more bytes come. Throws a ProtocolError on a malformed frame. */
  next(): Message<Uint8Array> | null {
    const n = this.check();
    if (n === 0 || this.size < n) return null;
    const tag = this.peek(HEADER_BYTES).readUInt8(2);
    const frame = this.take(n);
    this.compact();
    const m = decodePayload(tag, frame.subarray(HEADER_BYTES), this.layout.pageSize);
    this.consumed += n;
    return m;
  }

  /** Writes a chunk and returns every whole message. On a bad frame, throws a StreamError carrying the messages before it. */
  push(chunk: Uint8Array): Message<Uint8Array>[] {
    this.write(chunk);
    const out: Message<Uint8Array>[] = [];
    try {
      for (let m = this.next(); m !== null; m = this.next()) out.push(m);
    } catch (e) {
      if (e instanceof ProtocolError) throw new StreamError(e, out);
      throw e;
    }
    return out;
  }

  private compact(): void {
    if (this.head > 64 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  /** The first n buffered bytes (n ≤ a header), without consuming them. */
  private peek(n: number): Buffer {
    const first = this.chunks[this.head];
    if (first.length >= n) return first;
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    for (let i = this.head; o < n; i++) o += this.chunks[i].copy(out, o, 0, Math.min(this.chunks[i].length, n - o));
    return out;
  }

  /** Removes and returns the first n buffered bytes. */
  private take(n: number): Buffer {
    this.size -= n;
    const first = this.chunks[this.head];
    if (first.length >= n) {
      if (first.length === n) this.head++;
      else this.chunks[this.head] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    let o = 0;
    while (o < n) {
      const c = this.chunks[this.head];
      const k = Math.min(c.length, n - o);
      c.copy(out, o, 0, k);
      o += k;
      if (k === c.length) this.head++;
      else this.chunks[this.head] = c.subarray(k);
    }
    return out;
  }
}
