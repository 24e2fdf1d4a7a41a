/**
 * The source's side of the transport: opens the session's two connections,
 * turns the failure of either into one link-down, and reconnects on request
 * with a bounded backoff (the destination accepts the new pair for the same
 * session, and the engines then recover).
 */
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import { encodeMessage } from "../engine/codec.js";
import type { Channel, Message } from "../engine/messages.js";
import { sleep } from "./clock.js";
import { dataPlaneStatsWanted, formatNs, nativeDataPlaneWanted, plainSocketFd } from "./dataplane.js";
import { messageOf, RealError } from "./errors.js";
import { startBulkSender, type BulkSenderHandle } from "./native.js";
import { INSECURE, type Security } from "./tls.js";
import { connectChannel, FramedSocket } from "./transport.js";

/**
 * The native bulk sender's queue (docs/real.md "Data plane"): the engine
 * pulls while fewer bytes than this wait in it, and it reports room once it
 * fell below half. With the kernel's send buffer that is what a page request
 * can wait behind on the bulk connection — not the urgent one, which replies use.
 */
export const NATIVE_QUEUE_BYTES = 512 * 1024;
/** How long close() waits for the native sender to write what it holds. */
const FLUSH_GRACE_MS = 2000;

/** Where the native sender reads page bytes: the source guest's memfd. */
export interface DataPlaneSource {
  memfd: number;
  pageSize: number;
  pageCount: number;
}

export interface ReconnectPolicy {
  /** Connection attempts after a failure, at most. */
  attempts: number;
  /** And no attempt starts after this long. */
  totalMs: number;
  connectTimeoutMs: number;
  firstDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RECONNECT: ReconnectPolicy = { attempts: 30, totalMs: 60_000, connectTimeoutMs: 3000, firstDelayMs: 50, maxDelayMs: 2000 };

export interface SourceLinkHandlers {
  message(msg: Message<Uint8Array>, channel: Channel): void;
  /** Everything written on `channel` has reached the kernel: its lane has room. */
  writable(channel: Channel): void;
  /** The peer's bytes did not decode; the connection is closed (reported instead of `down`). */
  malformed(reason: string): void;
  /** The link broke (once per epoch); `reconnect()` may bring it back. */
  down(reason: string): void;
}

export class SourceLink {
  readonly session = randomBytes(16).toString("hex");
  private epoch = -1;
  private conns: Record<Channel, FramedSocket> | null = null;
  /** The bulk connection's native writer (plain TCP with a data plane source), for the current epoch. */
  private sender: BulkSenderHandle | null = null;
  private readonly pageBuf = { pages: new Uint32Array(256), zero: new Uint8Array(256) };
  private senderBytes = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private readonly wakeScheduled: Record<Channel, boolean> = { urgent: false, bulk: false };

  constructor(
    readonly host: string,
    readonly port: number,
    /** SessionInfo JSON for the destination. */
    private readonly info: string,
    private readonly handlers: SourceLinkHandlers,
    private readonly policy: ReconnectPolicy = DEFAULT_RECONNECT,
    /** The bulk lane's window: its kernel send buffer. */
    private readonly windowBytes?: number,
    /** Issue 15: every connection (both channels, every epoch) in TLS with these credentials. */
    private readonly security: Security = INSECURE,
    /** The guest's layout: what the destination's frames may carry is bounded by it, as at the destination. */
    private readonly layout?: { pageSize: number; pageCount: number },
    /** Issue 9: the native data plane moves the bulk channel's page bytes (plain TCP only). */
    private readonly dataPlane?: DataPlaneSource,
  ) {}

  /** Whether bulk pages go through the native sender (then their payload is DEFERRED or null). */
  get nativeBulk(): boolean {
    return this.dataPlane !== undefined && this.security.kind === "insecure" && nativeDataPlaneWanted();
  }

  /** This epoch, and the bytes its native sender took so far (the end of the last frame queued). */
  get bulkPosition(): { epoch: number; bytes: number } {
    return { epoch: this.epoch, bytes: this.senderBytes };
  }

  /** Whether this epoch's bulk pages go to the native sender now. */
  get nativeSending(): boolean {
    return this.sender !== null;
  }

  /** Whether a lane can take another message now: the native queue below its bound, or nothing unwritten in Node. */
  hasRoom(channel: Channel): boolean {
    if (this.conns === null) return false;
    if (channel === "bulk" && this.sender !== null) return this.sender.queued < NATIVE_QUEUE_BYTES;
    return this.conns[channel].buffered === 0;
  }

  get isUp(): boolean {
    return this.conns !== null;
  }

  get peer(): string {
    return `${this.host}:${this.port}`;
  }

  /** The first connection pair; throws a RealError saying why it failed. */
  async open(): Promise<void> {
    await this.connectPair();
  }

  /** Sends on a channel, returning the frame's size; a no-op while the link is down (the engine rebuilds what is lost). */
  send(channel: Channel, msg: Message<Uint8Array>, pageSize: number): number {
    const conns = this.conns;
    const c = conns?.[channel];
    if (c === undefined) return 0;
    const sender = this.sender;
    if (channel === "bulk" && sender !== null) return this.sendNative(sender, msg, pageSize);
    return c.send(msg, pageSize, () => this.wakeWhenWritten(conns, channel));
  }

  private sendNative(sender: BulkSenderHandle, msg: Message<Uint8Array>, pageSize: number): number {
    try {
      if (msg.type !== "pages") {
        const b = sender.frame(encodeMessage(msg, pageSize));
        this.senderBytes += b;
        return b;
      }
      const n = msg.pages.length;
      const { pages, zero } = this.pageBuf;
      for (let i = 0; i < n; i++) {
        pages[i] = msg.pages[i];
        zero[i] = msg.data[i] === null ? 1 : 0;
      }
      const b = sender.pages(pages.subarray(0, n), zero.subarray(0, n));
      this.senderBytes += b;
      return b;
    } catch (e) {
      // The sender failed (its error event takes the link down): the engine rebuilds what is lost.
      void e;
      return 0;
    }
  }

  /**
   * A write reached the kernel: the lane may have room again. Node emits
   * 'drain' only after a write that overflowed its own buffer, so the write
   * callbacks are the wake-up; they come once per turn of the event loop, after
   * I/O, so that reading the sockets (page requests) is never starved.
   */
  private wakeWhenWritten(conns: Record<Channel, FramedSocket> | null, channel: Channel): void {
    if (this.wakeScheduled[channel]) return;
    this.wakeScheduled[channel] = true;
    setImmediate(() => {
      this.wakeScheduled[channel] = false;
      if (this.conns === conns && conns !== null && conns[channel].buffered === 0) this.handlers.writable(channel);
    });
  }

  /** Bytes queued in this process on a channel (not yet in the kernel). */
  buffered(channel: Channel): number {
    if (channel === "bulk" && this.sender !== null) return this.sender.queued;
    return this.conns?.[channel].buffered ?? 0;
  }

  /**
   * Tries to bring the link back. Resolves true once both connections of a
   * new epoch are open, false when the policy's attempts or time ran out (or
   * the link was closed). Each failed attempt is reported through `log`.
   */
  async reconnect(log: (line: string) => void, giveUp: () => boolean = () => false): Promise<boolean> {
    const start = Date.now();
    let delay = this.policy.firstDelayMs;
    for (let attempt = 1; attempt <= this.policy.attempts; attempt++) {
      await sleep(delay);
      if (this.closed || giveUp()) return false;
      if (this.conns !== null) return true;
      if (Date.now() - start > this.policy.totalMs) break;
      try {
        await this.connectPair();
        log(`link to ${this.peer} re-established (attempt ${attempt})`);
        return true;
      } catch (e) {
        log(`reconnect attempt ${attempt}/${this.policy.attempts} to ${this.peer} failed: ${messageOf(e)}`);
      }
      delay = Math.min(this.policy.maxDelayMs, delay * 2);
    }
    return false;
  }

  /** Breaks the link as a network failure would (tests, demos). */
  breakLink(reason: string): void {
    // The sender's dup of the fd would keep the connection open: it goes first.
    this.sender?.stop();
    this.conns?.bulk.destroy(reason);
  }

  /** Resolves once the last frames have left (or a short grace time is over). */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    const c = this.conns;
    this.conns = null;
    // Bulk first, urgent once bulk's last frames (a cancel) have left: the
    // destination takes a closed connection for a broken link, so the other
    // one must still be open while it reads them.
    const sender = this.sender;
    this.sender = null;
    const flushed = sender === null ? Promise.resolve() : this.flush(sender);
    const stop = (): void => {
      if (sender === null) return;
      sender.stop();
      if (!dataPlaneStatsWanted()) return;
      const s = sender.stats();
      process.stderr.write(`bulk sender: ${s.written} bytes; idle ${formatNs(s.idleNs)}, reading pages ${formatNs(s.fillNs)}, send ${formatNs(s.sendNs)}, waiting for socket room ${formatNs(s.waitNs)}\n`);
    };
    this.closing = c === null ? flushed.then(stop) : flushed.then(() => new Promise((resolve) => {
      stop();
      c.bulk.close(() => c.urgent.close(resolve));
    }));
    return this.closing;
  }

  /** Resolves once the native sender wrote what it holds (a cancel, an error), or the grace time is over. */
  private flush(sender: BulkSenderHandle): Promise<void> {
    const s = this.flushing;
    if (s === null) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, FLUSH_GRACE_MS);
      s.resolve = () => {
        clearTimeout(t);
        resolve();
      };
      try {
        sender.close(true);
      } catch {
        resolve();
      }
    });
  }

  private flushing: { resolve: () => void } | null = null;

  /** The native writer of this epoch's bulk connection; Node's socket only reads it from now on. */
  private startSender(bulk: Socket, conns: Record<Channel, FramedSocket>, down: (reason: string) => void): BulkSenderHandle | null {
    const dp = this.dataPlane;
    const fd = plainSocketFd(bulk);
    if (dp === undefined || fd < 0) return null;
    const flushing = { resolve: () => undefined as void };
    this.flushing = flushing;
    return startBulkSender(fd, dp.memfd, dp.pageSize, dp.pageCount, NATIVE_QUEUE_BYTES / 2, (e) => {
      if (e.kind === "flushed") return flushing.resolve();
      if (this.conns !== conns) return;
      if (e.kind === "room") return this.handlers.writable("bulk");
      down(`bulk connection to ${this.peer}: ${e.error?.message ?? "the native sender stopped"}`);
    });
  }

  private async connectPair(): Promise<void> {
    if (this.closed) throw new RealError("the link was closed");
    const epoch = ++this.epoch;
    const t = this.policy.connectTimeoutMs;
    const urgent = await connectChannel(this.host, this.port, { channel: "urgent", session: this.session, epoch, info: "" }, t, undefined, this.security);
    let bulk;
    try {
      bulk = await connectChannel(this.host, this.port, { channel: "bulk", session: this.session, epoch, info: epoch === 0 ? this.info : "" }, t, this.windowBytes, this.security);
    } catch (e) {
      urgent.destroy();
      throw e;
    }
    if (this.closed) {
      urgent.destroy();
      bulk.destroy();
      throw new RealError("the link was closed");
    }
    const conns = {} as Record<Channel, FramedSocket>;
    const down = (reason: string): void => {
      if (this.conns !== conns) return;
      this.conns = null;
      this.sender?.stop();
      this.sender = null;
      conns.urgent.close();
      conns.bulk.close();
      this.handlers.down(reason);
    };
    for (const [channel, socket] of [["urgent", urgent], ["bulk", bulk]] as const) {
      conns[channel] = new FramedSocket(socket, channel, 0, {
        message: (m) => {
          if (this.conns === conns) this.handlers.message(m, channel);
        },
        malformed: (reason) => {
          if (this.conns !== conns) return;
          this.conns = null;
          conns.urgent.close();
          conns.bulk.close();
          this.handlers.malformed(reason);
        },
        down,
      });
      if (this.layout !== undefined) conns[channel].decoder.setLayout(this.layout.pageSize, this.layout.pageCount);
    }
    this.conns = conns;
    this.sender = this.nativeBulk ? this.startSender(bulk, conns, down) : null;
    this.senderBytes = 0;
    conns.urgent.start();
    conns.bulk.start();
  }
}
