/**
 * TCP between the agents. A migration (a "session") uses two connections:
 * `urgent` (TCP_NODELAY) for page requests and their replies, `bulk` for
 * everything else. Each connection starts with a preamble from the source
 * naming its channel, the session and the link epoch (bumped at every
 * reconnection); then both directions carry frames of the engine's codec (FrameDecoder).
 *
 * Preamble (little-endian, 32 bytes, then `infoLength` bytes of UTF-8 JSON):
 *
 *   0  u32 magic 0x43535050 ("PPSC")   4  u16 preamble version   6  u8 channel (0 urgent, 1 bulk)
 *   7  u8 reserved                     8  16 bytes session id   24  u32 epoch   28  u32 infoLength
 *
 * The info (bulk channel, epoch 0) tells the destination how to build its
 * guest: workload config, seed and steps (see SessionInfo).
 *
 * Nothing here throws at a peer's bytes: a bad preamble, a corrupt frame or a
 * closed socket becomes one `down` call with a sentence naming the peer.
 */
import { createServer, Socket, type AddressInfo, type Server } from "node:net";
import { encodeMessage, FrameDecoder, ProtocolError } from "../engine/codec.js";
import { ErrorCode, type Channel, type Message } from "../engine/messages.js";
import { messageOf, RealError } from "./errors.js";
import { setSendBuffer } from "./native.js";

export const PREAMBLE_MAGIC = 0x43535050;
export const PREAMBLE_VERSION = 1;
export const PREAMBLE_BYTES = 32;
/** How long an intentionally closed connection may take to flush its last frames. */
const CLOSE_GRACE_MS = 2000;
const MAX_INFO_BYTES = 1 << 20;
const CHANNELS: readonly Channel[] = ["urgent", "bulk"];
/** Sliced delivery: pause reading above this many waiting messages, resume below the low mark. */
const QUEUE_HIGH = 64;
const QUEUE_LOW = 16;

export interface Preamble {
  channel: Channel;
  /** 32 hex digits. */
  session: string;
  epoch: number;
  /** JSON (SessionInfo) on the first bulk connection; "" otherwise. */
  info: string;
}

export function encodePreamble(p: Preamble): Buffer {
  const info = Buffer.from(p.info, "utf8");
  const b = Buffer.alloc(PREAMBLE_BYTES + info.length);
  b.writeUInt32LE(PREAMBLE_MAGIC, 0);
  b.writeUInt16LE(PREAMBLE_VERSION, 4);
  b.writeUInt8(CHANNELS.indexOf(p.channel), 6);
  Buffer.from(p.session, "hex").copy(b, 8, 0, 16);
  b.writeUInt32LE(p.epoch >>> 0, 24);
  b.writeUInt32LE(info.length, 28);
  info.copy(b, PREAMBLE_BYTES);
  return b;
}

/**
 * Parses a preamble from the first bytes of a connection. Returns null while
 * incomplete; throws ProtocolError on anything that is not a ppsim preamble.
 */
export function parsePreamble(buf: Buffer): { preamble: Preamble; rest: Buffer } | null {
  if (buf.length >= 4 && buf.readUInt32LE(0) !== PREAMBLE_MAGIC) {
    throw new ProtocolError(`bad preamble magic 0x${buf.readUInt32LE(0).toString(16)}: not a ppsim source`);
  }
  if (buf.length < PREAMBLE_BYTES) return null;
  const version = buf.readUInt16LE(4);
  if (version !== PREAMBLE_VERSION) {
    throw new ProtocolError(`the source's transport preamble is version ${version}; this destination speaks ${PREAMBLE_VERSION}`);
  }
  const channel = CHANNELS[buf.readUInt8(6)];
  if (channel === undefined) throw new ProtocolError(`preamble names unknown channel ${buf.readUInt8(6)}`);
  const infoLength = buf.readUInt32LE(28);
  if (infoLength > MAX_INFO_BYTES) throw new ProtocolError(`preamble info of ${infoLength} bytes exceeds ${MAX_INFO_BYTES}`);
  if (buf.length < PREAMBLE_BYTES + infoLength) return null;
  const preamble: Preamble = {
    channel,
    session: buf.subarray(8, 24).toString("hex"),
    epoch: buf.readUInt32LE(24),
    info: buf.subarray(PREAMBLE_BYTES, PREAMBLE_BYTES + infoLength).toString("utf8"),
  };
  return { preamble, rest: buf.subarray(PREAMBLE_BYTES + infoLength) };
}

export function peerName(s: Socket): string {
  const a = s.remoteAddress ?? "?";
  return `${a.includes(":") ? `[${a}]` : a}:${s.remotePort ?? "?"}`;
}

export interface FramedHandlers {
  message(msg: Message<Uint8Array>): void;
  /**
   * The peer sent bytes that do not decode (the decoder's message). Whole
   * messages before them have been delivered; the socket is closed. Without
   * this handler a malformed stream is reported as `down`.
   */
  malformed?(reason: string): void;
  /** Called once, when the connection is unusable: closed, errored, or the peer sent garbage. */
  down(reason: string): void;
}

/**
 * One connection carrying codec frames. Incoming bytes are only decoded once
 * `start()` is called (the destination waits until both channels of an epoch
 * are there). `send` reports, through its callback, when the frame has left
 * this process (socket write callback): the engine's `transmitted`.
 */
export class FramedSocket {
  readonly decoder: FrameDecoder;
  readonly peer: string;
  private isDown = false;
  private started = false;
  private backlog: Buffer[] = [];
  /** Messages per event-loop turn; 0: all at once. */
  private slice = 0;
  private queue: Message<Uint8Array>[] = [];
  private head = 0;
  private draining = false;

  constructor(
    readonly socket: Socket,
    readonly channel: Channel,
    pageSize: number,
    private readonly handlers: FramedHandlers,
    leftover?: Buffer,
  ) {
    this.peer = peerName(socket);
    this.decoder = new FrameDecoder(pageSize);
    if (channel === "urgent") socket.setNoDelay(true);
    if (leftover !== undefined && leftover.length > 0) this.backlog.push(leftover);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(`${channel} connection to ${this.peer}: ${err.message}`));
    socket.on("close", () => this.fail(`${channel} connection to ${this.peer} closed`));
    socket.on("end", () => socket.end());
  }

  get up(): boolean {
    return !this.isDown;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const backlog = this.backlog;
    this.backlog = [];
    for (const b of backlog) this.onData(b);
  }

  /** Encodes and writes; `sent(bytes)` once the frame has left this process (never if the link fails first). */
  send(msg: Message<Uint8Array>, pageSize: number, sent?: (bytes: number) => void): number {
    const frame = encodeMessage(msg, pageSize);
    if (this.isDown) return frame.length;
    this.socket.write(frame, (err) => {
      if (err === undefined || err === null) sent?.(frame.length);
    });
    return frame.length;
  }

  /** Bytes accepted by `send` and not yet handed to the kernel. */
  get buffered(): number {
    return this.socket.writableLength;
  }

  /**
   * Closes without reporting `down` (an intentional close). Frames already
   * written (a cancel, an error) still reach the peer before the FIN; a peer
   * that never reads them does not hold the socket open for long.
   * `flushed` runs once they have left (or the grace time is over).
   */
  close(flushed?: () => void): void {
    this.isDown = true;
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      this.socket.destroy();
      flushed?.();
    };
    // After our FIN, wait for the peer's: destroying a socket with unread
    // data would send a reset, and a reset can discard what the peer has not read yet.
    if (this.socket.closed || this.socket.destroyed) return finish();
    this.socket.once("close", finish);
    this.socket.end();
    // Not unref'd: a process about to exit waits for its last frames, at most this long.
    const grace = setTimeout(finish, CLOSE_GRACE_MS);
    this.socket.once("close", () => clearTimeout(grace));
  }

  /** Breaks the connection as if the network failed (reports `down`). */
  destroy(reason: string): void {
    this.socket.destroy();
    this.fail(reason);
  }

  private onData(chunk: Buffer): void {
    if (this.isDown) return;
    if (!this.started) {
      this.backlog.push(chunk);
      return;
    }
    let msgs: Message<Uint8Array>[];
    try {
      msgs = this.decoder.push(chunk);
    } catch (e) {
      const why = e instanceof ProtocolError ? e.message : messageOf(e);
      const reason = `peer ${this.peer} sent bytes that are not a valid ppsim stream on the ${this.channel} channel: ${why}`;
      if (this.handlers.malformed === undefined) return this.destroy(reason);
      this.flushQueued();
      if (this.isDown) return;
      this.isDown = true;
      this.socket.destroy();
      this.handlers.malformed(reason);
      return;
    }
    if (this.slice === 0) {
      for (const m of msgs) {
        if (this.isDown) return;
        this.handlers.message(m);
      }
      return;
    }
    for (const m of msgs) this.queue.push(m);
    if (this.queue.length - this.head > QUEUE_HIGH) this.socket.pause();
    this.scheduleDrain();
  }

  /**
   * Sliced delivery (see `sliceMessages`): at most `slice` messages per turn
   * of the event loop, so that other sockets' data and fault events get a
   * turn in between; reading pauses while too many wait.
   */
  setSlice(messages: number): void {
    this.slice = messages;
  }

  private scheduleDrain(): void {
    if (this.draining) return;
    this.draining = true;
    setImmediate(() => this.drain());
  }

  private drain(): void {
    this.draining = false;
    const end = Math.min(this.queue.length, this.head + this.slice);
    while (this.head < end) {
      if (this.isDown) return;
      const m = this.queue[this.head];
      this.head++;
      this.handlers.message(m);
    }
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    }
    if (this.queue.length - this.head < QUEUE_LOW && this.socket.isPaused()) this.socket.resume();
    if (this.head < this.queue.length) this.scheduleDrain();
  }

  /** Whole messages already received are the peer's last words (a cancel, an error): they go first. */
  private flushQueued(): void {
    while (this.head < this.queue.length && !this.isDown) this.handlers.message(this.queue[this.head++]);
    this.queue = [];
    this.head = 0;
  }

  private fail(reason: string): void {
    if (this.isDown) return;
    this.flushQueued();
    if (this.isDown) return; // one of them closed this connection on purpose
    this.isDown = true;
    this.socket.destroy();
    this.handlers.down(reason);
  }
}

/** Opens one channel's TCP connection and writes its preamble. */
/**
 * The kernel's send queue of the bulk connection, bounded to the engine's
 * lane window: it is the only send window there is (the engine pulls the
 * next message only when this process holds nothing unwritten), so a page
 * request waits behind at most this much. Left alone, Linux grows it to
 * megabytes (tcp_wmem). Node exposes no setsockopt, hence the addon and the
 * handle's fd.
 */
export const BULK_KERNEL_QUEUE_BYTES = 256 * 1024;

function boundKernelQueue(socket: Socket, bytes: number): void {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return; // not a plain TCP handle: keep the kernel's default
  setSendBuffer(fd, Math.max(4096, Math.floor(bytes / 2))); // the kernel doubles it
}

export function connectChannel(
  host: string,
  port: number,
  preamble: Preamble,
  timeoutMs: number,
  sendBufferBytes = BULK_KERNEL_QUEUE_BYTES,
): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new RealError(`connecting to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once("error", (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new RealError(`cannot connect to ${host}:${port}: ${err.message}`));
    });
    socket.connect({ host, port }, () => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      // Until a FramedSocket takes it (its own handlers report failures), an error must not go unhandled.
      socket.on("error", () => undefined);
      if (preamble.channel === "urgent") socket.setNoDelay(true);
      else boundKernelQueue(socket, sendBufferBytes);
      socket.write(encodePreamble(preamble));
      resolve(socket);
    });
  });
}

export interface Accepted {
  socket: Socket;
  preamble: Preamble;
  /** Bytes that came after the preamble (the first frames). */
  rest: Buffer;
}

/**
 * The destination's listening socket: accepts connections, reads their
 * preamble (bounded in time and size), and hands each good one on. A bad
 * one is answered with an error frame and closed, and logged.
 */
export class Listener {
  private constructor(
    private readonly server: Server,
    readonly host: string,
    readonly port: number,
  ) {}

  static listen(host: string, port: number, onAccepted: (a: Accepted) => void, log: (line: string) => void, preambleTimeoutMs = 10_000): Promise<Listener> {
    const server = createServer({ noDelay: false }, (socket) => readPreamble(socket, preambleTimeoutMs, onAccepted, log));
    return new Promise<Listener>((resolve, reject) => {
      server.once("error", (err) => reject(new RealError(`cannot listen on ${host}:${port}: ${err.message}`)));
      server.listen({ host, port }, () => {
        server.removeAllListeners("error");
        server.on("error", (err) => log(`listener error: ${err.message}`));
        const a = server.address() as AddressInfo;
        resolve(new Listener(server, host, a.port));
      });
    });
  }

  close(): Promise<void> {
    return new Promise((r) => this.server.close(() => r()));
  }
}

function readPreamble(socket: Socket, timeoutMs: number, onAccepted: (a: Accepted) => void, log: (line: string) => void): void {
  const peer = peerName(socket);
  let buf: Buffer = Buffer.alloc(0);
  let done = false;
  const finish = (): void => {
    done = true;
    clearTimeout(timer);
    socket.off("data", onData);
  };
  const refuse = (why: string): void => {
    finish();
    log(`connection from ${peer} refused: ${why}`);
    // An error frame: a ppsim source shows it as the destination's reason.
    socket.end(encodeMessage({ type: "error", code: ErrorCode.Protocol, reason: why }, 0));
    setTimeout(() => socket.destroy(), 1000).unref();
  };
  const timer = setTimeout(() => refuse(`no preamble within ${timeoutMs} ms`), timeoutMs);
  const onData = (chunk: Buffer): void => {
    if (done) return;
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    let parsed: ReturnType<typeof parsePreamble>;
    try {
      parsed = parsePreamble(buf);
    } catch (e) {
      refuse(messageOf(e));
      return;
    }
    if (parsed === null) return;
    finish();
    onAccepted({ socket, preamble: parsed.preamble, rest: Buffer.from(parsed.rest) });
  };
  socket.on("data", onData);
  socket.on("error", () => {
    if (!done) {
      finish();
      log(`connection from ${peer} failed before its preamble`);
    }
  });
  socket.on("close", () => {
    if (!done) {
      finish();
      log(`connection from ${peer} closed before its preamble`);
    }
  });
}
