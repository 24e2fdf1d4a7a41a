/**
 * One bulk connection of the source (source-link.ts holds an epoch's set):
 * Node's socket, and over plain TCP the native sender thread that writes its
 * frames (docs/real.md "Data plane"). It knows its own window (the sender's
 * queue, or nothing unwritten in Node) and how many bytes of this epoch's
 * stream it took — where its last frame ends, which the destination's
 * progress reports are compared against to free what arrived.
 */
import { stamp } from "./switchover-stamps.js";
import { encodeMessage } from "../engine/codec.js";
import type { Message } from "../engine/messages.js";
import { bulkThreadNice, dataPlaneStatsWanted, formatNs } from "./dataplane.js";
import type { BulkSenderHandle } from "./native.js";
import type { FramedSocket } from "./transport.js";

/**
 * The native bulk sender's queue (docs/real.md "Data plane"): the engine
 * pulls while fewer bytes than this wait in it, and it reports room once it
 * fell below half. With the kernel's send buffer that is what a page request
 * can wait behind on a bulk connection — not the urgent one, which replies use.
 */
export const NATIVE_QUEUE_BYTES = 512 * 1024;
/** How long close() waits for the native sender to write what it holds. */
const FLUSH_GRACE_MS = 2000;

export class BulkStream {
  /** Bytes of frames this connection took in this epoch (the end of the last one queued). */
  bytes = 0;
  private readonly pageBuf = { pages: new Uint32Array(256), zero: new Uint8Array(256) };
  private flushed: (() => void) | null = null;
  private wakeScheduled = false;
  /** The native sender was stopped: Node must not write behind it (a frame may be half written). */
  private stopped = false;

  constructor(
    /** 0: the ordered connection; 1…: opened once the destination confirmed the switchover. */
    readonly index: number,
    readonly conn: FramedSocket,
    /** The native writer, or null (TLS, PPSIM_DATAPLANE=js): Node writes. */
    public sender: BulkSenderHandle | null,
  ) {}

  /** The sender said it wrote everything it held (after close(true)). */
  onFlushed(): void {
    this.flushed?.();
  }

  /** Room for another message: the native queue below its bound, or nothing unwritten in Node. */
  get hasRoom(): boolean {
    if (this.stopped) return false;
    return this.sender !== null ? this.sender.queued < NATIVE_QUEUE_BYTES : this.conn.buffered === 0;
  }

  /** Bytes queued in this process and not yet in the kernel. */
  get queued(): number {
    return this.sender !== null ? this.sender.queued : this.conn.buffered;
  }

  /** Queues one frame; returns its size (0 if the native sender failed: its error event takes the link down). */
  send(msg: Message<Uint8Array>, pageSize: number, written: () => void): number {
    const sender = this.sender;
    if (this.stopped) return 0;
    if (sender === null) {
      const b = this.conn.send(msg, pageSize, () => this.wakeWhenWritten(written));
      this.bytes += b;
      return b;
    }
    try {
      let b: number;
      if (msg.type === "switchover") {
        // The downtime's critical path ends with this frame: what follows is background.
        const frame = encodeMessage(msg, pageSize);
        stamp("s.frame_encoded");
        b = sender.frame(frame, bulkThreadNice());
        stamp("s.frame_queued");
      } else if (msg.type !== "pages") {
        b = sender.frame(encodeMessage(msg, pageSize));
      } else {
        const n = msg.pages.length;
        const { pages, zero } = this.pageBuf;
        for (let i = 0; i < n; i++) {
          pages[i] = msg.pages[i];
          zero[i] = msg.data[i] === null ? 1 : 0;
        }
        b = sender.pages(pages.subarray(0, n), zero.subarray(0, n));
      }
      this.bytes += b;
      return b;
    } catch {
      return 0;
    }
  }

  /**
   * A write reached the kernel: the lane may have room again. Node emits
   * 'drain' only after a write that overflowed its own buffer, so the write
   * callbacks are the wake-up; they come once per turn of the event loop, after
   * I/O, so that reading the sockets (page requests) is never starved.
   */
  private wakeWhenWritten(written: () => void): void {
    if (this.wakeScheduled) return;
    this.wakeScheduled = true;
    setImmediate(() => {
      this.wakeScheduled = false;
      if (this.conn.buffered === 0) written();
    });
  }

  /** Resolves once the native sender wrote what it holds (a cancel, an error), or the grace time is over. */
  flush(): Promise<void> {
    const sender = this.sender;
    if (sender === null) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, FLUSH_GRACE_MS);
      this.flushed = () => {
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

  /** Joins the native sender (its dup of the socket would hold the connection open); logs its time with PPSIM_DATAPLANE_STATS=1. */
  stopSender(): void {
    const sender = this.sender;
    if (sender === null) return;
    this.sender = null;
    this.stopped = true;
    sender.stop();
    if (!dataPlaneStatsWanted()) return;
    const s = sender.stats();
    process.stderr.write(`bulk sender ${this.index}: ${s.written} bytes; idle ${formatNs(s.idleNs)}, reading pages ${formatNs(s.fillNs)}, send ${formatNs(s.sendNs)}, waiting for socket room ${formatNs(s.waitNs)}; nice ${s.nice}${s.niceErrno !== 0 ? ` (not set: errno ${s.niceErrno})` : ""}\n`);
  }
}
