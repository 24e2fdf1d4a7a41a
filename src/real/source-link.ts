/**
 * The source's side of the transport: opens the session's connections (urgent
 * and bulk 0, then — in post-copy, once the destination confirmed the
 * switchover — bulk 1 … N-1), turns the failure of any into one link-down,
 * and reconnects on request with a bounded backoff (the destination accepts
 * the new set for the same session, and the engines then recover).
 *
 * Several bulk connections (issue 9): before the confirmation every bulk
 * frame goes on connection 0, in the engine's order (pre-copy, the
 * switchover, its stale list). After it the order of pages no longer
 * matters — every copy the destination holds is current, so its received
 * bitmap alone says what it has (ledger.ts) — and each frame goes to the
 * connection with the least queued. docs/real.md "Several connections".
 *
 * The fault lane (issue 9, fault-lane.ts; its slot: source-lane-slot.ts):
 * once the destination answered the hello (the session has formed there),
 * and in every later epoch, a third connection whose requests a native
 * thread answers from the memfd — armed when the switchover goes out. Its
 * failure is the link's, like any other connection's; one that cannot be
 * opened is only a note (faults then go the JS way, on urgent).
 *
 * Reconnecting's policy and backoff: source-reconnect.ts.
 */
import { stamp } from "./switchover-stamps.js";
import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import type { Channel, Message } from "../engine/messages.js";
import { bulkThreadNice, nativeDataPlaneWanted, plainSocketFd, sendWayFor, switchoverThreadNice } from "./dataplane.js";
import { messageOf, RealError } from "./errors.js";
import { startBulkSender } from "./native.js";
import { MAX_BULK_CONNECTIONS } from "./preamble.js";
import { BulkStream, NATIVE_QUEUE_BYTES } from "./source-bulk.js";
import { INSECURE, type Security } from "./tls.js";
import { connectChannel, FramedSocket, type FramedHandlers } from "./transport.js";
import { faultLaneWanted } from "./fault-lane.js";
import { SourceLaneSlot, type LaneHolder } from "./source-lane-slot.js";
import { DEFAULT_RECONNECT, reconnectWithBackoff, type ReconnectPolicy } from "./source-reconnect.js";

export { NATIVE_QUEUE_BYTES };
export { DEFAULT_RECONNECT, type ReconnectPolicy };

/**
 * `--connections` by default: bulk connections once the destination runs
 * (docs/real-benchmarks.md "Connections 1, 2, 3" has the measurement).
 */
export const DEFAULT_BULK_CONNECTIONS = 3;

/** Where the native sender reads page bytes: the source guest's memfd. */
export interface DataPlaneSource {
  memfd: number;
  pageSize: number;
  pageCount: number;
  /** Pre-copy rounds run (mode precopy or hybrid): a connection opened before the switchover sends by sendWayFor's rounds way, for its whole life. */
  rounds?: boolean;
}

export interface SourceLinkHandlers {
  message(msg: Message<Uint8Array>, channel: Channel): void;
  /** Everything written on `channel` has reached the kernel: its lane has room. */
  writable(channel: Channel): void;
  /** The peer's bytes did not decode; the connection is closed (reported instead of `down`). */
  malformed(reason: string): void;
  /** The link broke (once per epoch); `reconnect()` may bring it back. */
  down(reason: string): void;
  /** Something worth a log line that changes nothing (an extra bulk connection that could not be opened). */
  note?(line: string): void;
  /** The fault lane answered demand requests with these pages (the engine books them as sent). */
  served?(pages: Uint32Array, zero: Uint8Array, bytes: number): void;
}

/** One epoch's connections. */
interface Conns extends LaneHolder {
  urgent: FramedSocket;
  /** [0] the ordered bulk connection, then the extra ones as they open. */
  bulk: BulkStream[];
}

export class SourceLink {
  readonly session = randomBytes(16).toString("hex");
  private epoch = -1;
  private conns: Conns | null = null;
  /** Where the last bulk frame went: its connection and where it ends in that connection's stream. */
  private last = { stream: 0, bytes: 0 };
  /** The destination confirmed the switchover: open the extra bulk connections (this epoch and every later one). */
  private spreading = false;
  private closed = false;
  private closing: Promise<void> | null = null;
  private urgentWake = false;
  /** The switchover went to a bulk connection: connections opened from now on start at the bulk threads' nice (dataplane.ts). */
  private switchoverSent = false;
  /** The fault lane of each epoch (source-lane-slot.ts). */
  private readonly lane: SourceLaneSlot;

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
    /** Bulk connections once the destination confirmed the switchover (1: one ordered stream throughout). */
    readonly connections = 1,
  ) {
    if (!Number.isInteger(connections) || connections < 1 || connections > MAX_BULK_CONNECTIONS) throw new RealError(`bulk connections must be 1 … ${MAX_BULK_CONNECTIONS}, got ${connections}`);
    const opts = { host, port, session: this.session, security, connectTimeoutMs: policy.connectTimeoutMs, dataPlane };
    this.lane = new SourceLaneSlot(opts, {
      wanted: () => this.nativeLane && faultLaneWanted(),
      armed: () => this.switchoverSent,
      isCurrent: (h) => this.conns === h,
      down: (h, reason) => {
        if (this.conns === h) this.downFor(this.conns)(reason);
      },
      malformed: (h, reason) => {
        if (this.conns === h && this.drop(this.conns)) this.handlers.malformed(reason);
      },
      deliver: (m, channel) => this.handlers.message(m, channel),
      note: (line) => this.handlers.note?.(line),
      served: (pages, zero, bytes) => this.handlers.served?.(pages, zero, bytes),
    });
  }

  /** Fault lanes opened, over every epoch. */
  get lanesOpened(): number {
    return this.lane.lanesOpened;
  }

  /** Whether bulk pages go through the native sender (then their payload is DEFERRED or null). */
  get nativeBulk(): boolean {
    return this.nativeLane;
  }

  /** Whether a fault lane may serve from the memfd (plain TCP, the native data plane wanted). */
  private get nativeLane(): boolean {
    return this.dataPlane !== undefined && this.security.kind === "insecure" && nativeDataPlaneWanted();
  }

  /** This epoch, and where the last bulk frame went: which connection, and the end of that frame in its stream. */
  get bulkPosition(): { epoch: number; stream: number; bytes: number } {
    return { epoch: this.epoch, stream: this.last.stream, bytes: this.last.bytes };
  }

  /** Whether this epoch's bulk pages go to the native sender now. */
  get nativeSending(): boolean {
    return this.conns?.bulk[0].sender != null;
  }

  /** Bulk connections open in this epoch. */
  get bulkStreams(): number {
    return this.conns?.bulk.length ?? 0;
  }

  /** The most bulk connections open at once, over every epoch. */
  peakBulkStreams = 0;

  /** Whether a lane can take another message now: some bulk connection's window has room, or nothing unwritten on urgent. */
  hasRoom(channel: Channel): boolean {
    const c = this.conns;
    if (c === null) return false;
    if (channel === "urgent") return c.urgent.buffered === 0;
    for (const b of c.bulk) if (b.hasRoom) return true;
    return false;
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

  /**
   * The destination confirmed the switchover: from now on the extra bulk
   * connections may carry pages (opened now, and at every reconnection).
   */
  spread(): void {
    if (this.spreading || this.connections === 1) return;
    this.spreading = true;
    if (this.conns !== null) void this.openExtras(this.conns, this.epoch);
  }

  /** Sends on a channel, returning the frame's size; a no-op while the link is down (the engine rebuilds what is lost). */
  send(channel: Channel, msg: Message<Uint8Array>, pageSize: number): number {
    const c = this.conns;
    if (c === null) return 0;
    if (channel === "urgent") return c.urgent.send(msg, pageSize, () => this.wakeUrgent(c));
    if (msg.type === "switchover") {
      this.switchoverSent = true;
      this.lane.arm(c);
      stamp("s.lane_armed");
    }
    // The least queued connection with room, the ordered one on a tie (and the only one before the confirmation).
    let best = c.bulk[0];
    for (const b of c.bulk) if (b.hasRoom && (!best.hasRoom || b.queued < best.queued)) best = b;
    const n = best.send(msg, pageSize, () => {
      if (this.conns === c) this.handlers.writable("bulk");
    });
    this.last = { stream: best.index, bytes: best.bytes };
    return n;
  }

  private wakeUrgent(c: Conns): void {
    if (this.urgentWake) return;
    this.urgentWake = true;
    setImmediate(() => {
      this.urgentWake = false;
      if (this.conns === c && c.urgent.buffered === 0) this.handlers.writable("urgent");
    });
  }

  /** Bytes queued in this process on a channel (not yet in the kernel). */
  buffered(channel: Channel): number {
    const c = this.conns;
    if (c === null) return 0;
    if (channel === "urgent") return c.urgent.buffered;
    return c.bulk.reduce((a, b) => a + b.queued, 0);
  }

  /**
   * Tries to bring the link back. Resolves true once the connections of a
   * new epoch are open, false when the policy's attempts or time ran out (or
   * the link was closed). Each failed attempt is reported through `log`.
   */
  reconnect(log: (line: string) => void, giveUp: () => boolean = () => false): Promise<boolean> {
    return reconnectWithBackoff(this.policy, this.peer, log, {
      stop: () => this.closed || giveUp(),
      up: () => this.conns !== null,
      attempt: () => this.connectPair(),
    });
  }

  /** Breaks the link as a network failure would (tests, demos). */
  breakLink(reason: string): void {
    const c = this.conns;
    if (c === null) return;
    // The senders' dups of the fds would keep the connections open: they go first.
    for (const b of c.bulk) b.stopSender();
    c.bulk[0].conn.destroy(reason);
  }

  /** These pages are about to be punched out of the memfd (source-release.ts): no fault lane may answer them from now on. */
  releasing(pages: Uint32Array): void {
    this.lane.release(this.conns, pages);
  }

  /** Resolves once the last frames have left (or a short grace time is over). */
  close(): Promise<void> {
    if (this.closing !== null) return this.closing;
    this.closed = true;
    const c = this.conns;
    this.conns = null;
    if (c === null) return (this.closing = Promise.resolve());
    // Bulk first, urgent once bulk's last frames (a cancel) have left: the
    // destination takes a closed connection for a broken link, so the other
    // one must still be open while it reads them.
    this.closing = Promise.all(c.bulk.map((b) => b.flush())).then(
      () =>
        new Promise<void>((resolve) => {
          let open = c.bulk.length;
          for (const b of c.bulk) {
            b.stopSender();
            b.conn.close(() => {
              // The lane last: the destination takes its end for a broken link too.
              if (--open === 0)
                c.urgent.close(() => {
                  this.lane.stop(c);
                  resolve();
                });
            });
          }
        }),
    );
    return this.closing;
  }

  /** The native writer of one bulk connection; Node's socket only reads it from now on. */
  private startStream(index: number, socket: Socket, conns: Conns, down: (reason: string) => void, handlers: FramedHandlers): BulkStream {
    const conn = new FramedSocket(socket, "bulk", 0, handlers);
    if (this.layout !== undefined) conn.decoder.setLayout(this.layout.pageSize, this.layout.pageCount);
    const stream = new BulkStream(index, conn, null);
    const dp = this.dataPlane;
    const fd = plainSocketFd(socket);
    if (this.nativeBulk && dp !== undefined && fd >= 0) {
      stream.sender = startBulkSender(fd, dp.memfd, dp.pageSize, dp.pageCount, NATIVE_QUEUE_BYTES / 2, (e) => {
        if (e.kind === "flushed") return stream.onFlushed();
        if (this.conns !== conns) return;
        if (e.kind === "room") return this.handlers.writable("bulk");
        down(`bulk connection ${index} to ${this.peer}: ${e.error?.message ?? "the native sender stopped"}`);
      }, this.switchoverSent ? bulkThreadNice() : switchoverThreadNice(), sendWayFor(dp.rounds === true && !this.switchoverSent));
    }
    return stream;
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
    const conns = {} as Conns;
    const down = this.downFor(conns);
    conns.urgent = new FramedSocket(urgent, "urgent", 0, this.framedHandlers(conns, "urgent", down));
    if (this.layout !== undefined) conns.urgent.decoder.setLayout(this.layout.pageSize, this.layout.pageCount);
    conns.bulk = [this.startStream(0, bulk, conns, down, this.framedHandlers(conns, "bulk", down))];
    this.conns = conns;
    this.peakBulkStreams = Math.max(this.peakBulkStreams, 1);
    this.last = { stream: 0, bytes: 0 };
    conns.urgent.start();
    conns.bulk[0].conn.start();
    if (this.spreading) void this.openExtras(conns, epoch);
    this.lane.newEpoch(conns, epoch);
  }

  /** Bulk connections 1 … N-1 of this epoch; one that cannot be opened is only a note (the others carry its share). */
  private async openExtras(conns: Conns, epoch: number): Promise<void> {
    const down = this.downFor(conns);
    for (let i = conns.bulk.length; i < this.connections; i++) {
      let socket: Socket;
      try {
        socket = await connectChannel(this.host, this.port, { channel: "bulk", stream: i, session: this.session, epoch, info: "" }, this.policy.connectTimeoutMs, this.windowBytes, this.security);
      } catch (e) {
        this.handlers.note?.(`bulk connection ${i} to ${this.peer} not opened: ${messageOf(e)}`);
        return;
      }
      if (this.conns !== conns) {
        socket.destroy();
        return;
      }
      const s = this.startStream(i, socket, conns, down, this.framedHandlers(conns, "bulk", down));
      conns.bulk.push(s);
      this.peakBulkStreams = Math.max(this.peakBulkStreams, conns.bulk.length);
      s.conn.start();
      this.handlers.writable("bulk");
    }
  }

  /** The failure of any of an epoch's connections: the link is down, once. */
  private downFor(conns: Conns): (reason: string) => void {
    return (reason) => {
      if (this.drop(conns)) this.handlers.down(reason);
    };
  }

  /** Closes an epoch's connections if they are still the current ones; returns whether they were. */
  private drop(conns: Conns): boolean {
    if (this.conns !== conns) return false;
    this.conns = null;
    this.lane.stop(conns);
    for (const b of conns.bulk) b.stopSender();
    conns.urgent.close();
    for (const b of conns.bulk) b.conn.close();
    return true;
  }

  private framedHandlers(conns: Conns, channel: Channel, down: (reason: string) => void): FramedHandlers {
    return {
      message: (m) => {
        if (this.conns !== conns) return;
        if (this.lane.intercept(conns, m, channel, this.epoch)) return;
        this.handlers.message(m, channel);
      },
      malformed: (reason) => {
        if (this.drop(conns)) this.handlers.malformed(reason);
      },
      down,
    };
  }
}
