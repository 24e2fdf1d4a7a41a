/**
 * TCP (in TLS unless --insecure) between the agents. A migration (a
 * "session") uses two connections: `urgent` (TCP_NODELAY) for page requests
 * and their replies, `bulk` for everything else. Each connection starts with
 * a preamble from the source naming its channel, the session and the link
 * epoch (bumped at every reconnection; preamble.ts); then both directions
 * carry frames of the engine's codec (FrameDecoder). The destination's side
 * of accepting connections is listener.ts.
 *
 * Nothing here throws at a peer's bytes: a bad preamble, a corrupt frame, a
 * connection that stalls mid-frame or a closed socket becomes one `down`
 * call with a sentence naming the peer.
 */
import { Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { encodeMessage } from "../engine/codec.js";
import { FrameDecoder } from "../engine/frame-decoder.js";
import type { Channel, Message } from "../engine/messages.js";
import { messageOf, RealError } from "./errors.js";
import { setSendBuffer } from "./native.js";
import { peerName } from "./peer-text.js";
import { encodePreamble, type Preamble } from "./preamble.js";
import { clientTlsOptions, describeTlsError, INSECURE, type Security } from "./tls.js";

export { encodePreamble, parsePreamble, PREAMBLE_BYTES, PREAMBLE_MAGIC, PREAMBLE_VERSION, type Preamble } from "./preamble.js";
export { Listener, type Accepted, type FramedOptions, type ListenerOptions } from "./listener.js";
import type { FramedOptions } from "./listener.js";
export { peerName } from "./peer-text.js";

/** How long an intentionally closed connection may take to flush its last frames. */
const CLOSE_GRACE_MS = 2000;

/**
 * Ends a connection so that frames already written (a cancel, an error)
 * still reach the peer before the FIN: after our FIN, wait for the peer's —
 * destroying a socket with unread data would send a reset, and a reset can
 * discard what the peer has not read yet — but not longer than the grace
 * time (not unref'd: a process about to exit waits for its last frames, at
 * most this long). `flushed` runs once, when the socket is gone.
 */
export function closeGracefully(socket: Socket, flushed?: () => void): void {
  let done = false;
  const finish = (): void => {
    if (done) return;
    done = true;
    socket.destroy();
    flushed?.();
  };
  if (socket.closed || socket.destroyed) return finish();
  socket.once("close", finish);
  socket.end();
  const grace = setTimeout(finish, CLOSE_GRACE_MS);
  socket.once("close", () => clearTimeout(grace));
}
/** Before `start()` a legitimate source has sent its hello at most: more than this is refused. */
export const MAX_UNSTARTED_BYTES = 64 * 1024;
/** A connection holding part of a frame and silent this long is taken for dead (or hostile). */
export const DEFAULT_STALL_MS = 30_000;
/** Sliced delivery: reading pauses while a whole frame waits and this much is buffered. */
const BUFFER_HIGH = 2 * 1024 * 1024;

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
  private backlogBytes = 0;
  /** Messages per event-loop turn; 0: all at once. */
  private slice = 0;
  private draining = false;
  private lastDataAt = 0;
  private stallTimer: NodeJS.Timeout | undefined;
  private readonly stallMs: number;
  /**
   * Bytes of the frames whose handler has returned: on the destination's bulk
   * connections (the JS path), the pages of every frame up to here are
   * installed, since the handler installs synchronously (dest-session.ts).
   * Compared with the source's count of the same stream (source-bulk.ts).
   */
  taken = 0;

  constructor(
    readonly socket: Socket,
    readonly channel: Channel,
    pageSize: number,
    private readonly handlers: FramedHandlers,
    leftover?: Buffer,
    o: FramedOptions = {},
  ) {
    this.stallMs = o.stallMs ?? DEFAULT_STALL_MS;
    this.peer = peerName(socket);
    this.decoder = new FrameDecoder(pageSize);
    if (channel === "urgent") socket.setNoDelay(true);
    if (leftover !== undefined && leftover.length > 0) {
      this.backlog.push(leftover);
      this.backlogBytes += leftover.length;
    }
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("error", (err) => this.fail(`${channel} connection to ${this.peer}: ${err.message}`));
    socket.on("close", () => this.fail(`${channel} connection to ${this.peer} closed`));
    socket.on("end", () => socket.end());
  }

  get up(): boolean {
    return !this.isDown;
  }

  /** From here on frames are bounded by this layout. */
  setLayout(pageSize: number, pageCount: number): void {
    this.decoder.setLayout(pageSize, pageCount);
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    const backlog = this.backlog;
    this.backlog = [];
    this.backlogBytes = 0;
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
    closeGracefully(this.socket, flushed);
  }

  /** Breaks the connection as if the network failed (reports `down`). */
  destroy(reason: string): void {
    this.socket.destroy();
    this.fail(reason, false);
  }

  private onData(chunk: Buffer): void {
    if (this.isDown) return;
    if (!this.started) {
      this.backlogBytes += chunk.length;
      if (this.backlogBytes > MAX_UNSTARTED_BYTES) {
        this.destroy(`peer ${this.peer} sent over ${MAX_UNSTARTED_BYTES} bytes on the ${this.channel} channel before its session formed`);
        return;
      }
      this.backlog.push(chunk);
      return;
    }
    this.lastDataAt = Date.now();
    this.decoder.write(chunk);
    if (this.slice === 0) {
      this.deliver(Infinity);
    } else {
      // Refuse a bad or oversized header now, not once the queue gets to it; pause while a whole frame waits.
      if (!this.guard(() => this.decoder.hasFrame() && this.decoder.buffered > BUFFER_HIGH && this.socket.pause())) return;
      this.scheduleDrain();
    }
    this.watchStall();
  }

  /** Runs a decoder step; a ProtocolError takes the connection down. Returns false then. */
  private guard(step: () => unknown): boolean {
    try {
      step();
      return true;
    } catch (e) {
      // Messages before the bad frame were delivered already (one decoded at a time).
      const reason = `peer ${this.peer} sent bytes that are not a valid ppsim stream on the ${this.channel} channel: ${messageOf(e)}`;
      if (this.handlers.malformed === undefined) {
        this.destroy(reason);
      } else if (!this.isDown) {
        this.isDown = true;
        clearTimeout(this.stallTimer);
        this.socket.destroy();
        this.handlers.malformed(reason);
      }
      return false;
    }
  }

  /** Hands up to `n` whole messages to the handler, one decoded at a time (a handler may change the decoder's layout in between). */
  private deliver(n: number): void {
    for (let i = 0; i < n && !this.isDown; i++) {
      let m: Message<Uint8Array> | null = null;
      if (!this.guard(() => (m = this.decoder.next()))) return;
      if (m === null) return;
      const upTo = this.decoder.consumed;
      this.handlers.message(m);
      this.taken = upTo;
    }
  }

  /** Arms the mid-frame stall check when part of a frame is buffered and the rest is the peer's to send. */
  private watchStall(): void {
    if (this.stallTimer !== undefined || this.isDown) return;
    if (this.decoder.buffered === 0) return;
    this.stallTimer = setTimeout(() => {
      this.stallTimer = undefined;
      if (this.isDown || this.decoder.buffered === 0) return;
      let waitingOnUs = false;
      if (!this.guard(() => (waitingOnUs = this.decoder.hasFrame() || this.socket.isPaused()))) return;
      const silent = Date.now() - this.lastDataAt;
      if (!waitingOnUs && silent >= this.stallMs) {
        this.destroy(`peer ${this.peer} stopped sending for ${Math.round(silent / 1000)} s in the middle of a frame on the ${this.channel} channel (${this.decoder.buffered} bytes of it received)`);
        return;
      }
      this.watchStall();
    }, Math.max(10, this.stallMs - (Date.now() - this.lastDataAt)));
    this.stallTimer.unref();
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
    if (this.isDown) return;
    this.deliver(this.slice);
    if (this.isDown) return;
    let more = false;
    if (!this.guard(() => (more = this.decoder.hasFrame()))) return;
    if (!more && this.socket.isPaused()) this.socket.resume();
    if (more) this.scheduleDrain();
    else if (this.decoder.buffered > 0) this.watchStall();
  }

  private fail(reason: string, lastWords = true): void {
    if (this.isDown) return;
    clearTimeout(this.stallTimer);
    // Whole messages already received are the peer's last words (a cancel,
    // an error): they are handled before the link counts as down.
    if (this.started && lastWords) this.deliverLastWords();
    if (this.isDown) return; // one of them closed this connection on purpose
    this.isDown = true;
    this.socket.destroy();
    this.handlers.down(reason);
  }

  private deliverLastWords(): void {
    for (;;) {
      let m: Message<Uint8Array> | null = null;
      try {
        m = this.decoder.next();
      } catch {
        return; // what follows a bad frame is not the peer's words
      }
      if (m === null || this.isDown) return;
      this.handlers.message(m);
    }
  }
}
/**
 * The kernel's send queue of the bulk connection, bounded to the engine's
 * lane window: it is the only send window there is (the engine pulls the
 * next message only when this process holds nothing unwritten), so a page
 * request waits behind at most this much. Left alone, Linux grows it to
 * megabytes (tcp_wmem). Node exposes no setsockopt, hence the addon and the
 * handle's fd. With TLS it bounds the TCP socket under the TLS layer.
 */
export const BULK_KERNEL_QUEUE_BYTES = 256 * 1024;

function boundKernelQueue(socket: Socket, bytes: number): void {
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) return; // not a plain TCP handle: keep the kernel's default
  setSendBuffer(fd, Math.max(4096, Math.floor(bytes / 2))); // the kernel doubles it
}

/**
 * Opens one channel's connection and writes its preamble: TCP, the kernel
 * queue bound (bulk) or TCP_NODELAY (urgent) on the TCP socket itself, then
 * the TLS handshake over it unless `security` is insecure. Resolves with the
 * socket to frame (the TLSSocket when TLS is on).
 */
export function connectChannel(
  host: string,
  port: number,
  preamble: Preamble,
  timeoutMs: number,
  sendBufferBytes = BULK_KERNEL_QUEUE_BYTES,
  security: Security = INSECURE,
): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const raw = new Socket();
    let tls: Socket | null = null;
    const timer = setTimeout(() => {
      raw.destroy();
      tls?.destroy();
      reject(new RealError(`connecting to ${host}:${port} timed out after ${timeoutMs} ms${tls !== null ? " (in the TLS handshake)" : ""}`));
    }, timeoutMs);
    const ready = (socket: Socket): void => {
      clearTimeout(timer);
      socket.removeAllListeners("error");
      // Until a FramedSocket takes it (its own handlers report failures), an error must not go unhandled.
      socket.on("error", () => undefined);
      // Resolved once the preamble has left this process: the engine sends only into an empty lane
      // (writableLength 0), and over TLS the write completes only after encryption.
      socket.write(encodePreamble(preamble), (err) => {
        if (err === undefined || err === null) resolve(socket);
        else reject(new RealError(`writing the preamble to ${host}:${port} failed: ${err.message}`));
      });
    };
    raw.once("error", (err: Error) => {
      clearTimeout(timer);
      raw.destroy();
      reject(new RealError(`cannot connect to ${host}:${port}: ${err.message}`));
    });
    raw.connect({ host, port }, () => {
      if (preamble.channel === "urgent") raw.setNoDelay(true);
      else boundKernelQueue(raw, sendBufferBytes);
      if (security.kind === "insecure") return ready(raw);
      raw.removeAllListeners("error");
      raw.on("error", () => undefined); // the TLS socket reports it
      const t = tlsConnect({ socket: raw, host, ...clientTlsOptions(security, host) });
      tls = t;
      t.once("error", (err: Error) => {
        clearTimeout(timer);
        t.destroy();
        reject(new RealError(`TLS handshake with ${host}:${port} failed: ${describeTlsError(err, "source")}`));
      });
      t.once("secureConnect", () => ready(t));
    });
  });
}
