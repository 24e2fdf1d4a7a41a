/**
 * The destination's bulk connection over the native receiver
 * (native/src/bulk_receiver.cc): a thread reads the socket, installs pages
 * frames into guest memory and reports which pages it installed; this class
 * turns its notices into the engine's messages, in arrival order. A pages
 * notice becomes a pages message whose entries are marked installed (the
 * installPages effect skips them; the engine books them as usual, its byte
 * count of the bulk stream included). Any other frame is decoded by the
 * engine's FrameDecoder here, handed on, and only then is the thread let go
 * on (release): the hello, a switchover or a cancel may change what
 * installing means.
 *
 * Node's socket still writes (helloAck, error frames) but no longer reads: the
 * thread does, from a dup of the fd. It has the FramedSocket's face towards
 * the session (send, buffered, close, start, setLayout).
 */
import type { Socket } from "node:net";
import { encodeMessage, PAGE_ENTRY_OVERHEAD } from "../engine/codec.js";
import { FrameDecoder, maxPayloadBytes } from "../engine/frame-decoder.js";
import { MessageTag, type Message } from "../engine/messages.js";
import { bulkThreadNice, dataPlaneStatsWanted, formatNs, installedPages, resumeNodeReading, switchoverThreadNice } from "./dataplane.js";
import { messageOf } from "./errors.js";
import { createBulkReceiver, type BulkNotice, type BulkReceiverHandle, type PageTableHandle, type ZeroHoleTableHandle } from "./native.js";
import { peerName } from "./peer-text.js";
import { closeGracefully, type FramedHandlers } from "./transport.js";
import { stamp } from "./switchover-stamps.js";

const TAGS = 12;
/** Pages larger than this are huge pages (hugetlbfs; 64 KiB: the largest base page Linux has). */
const HUGE_ABOVE = 64 * 1024;
/**
 * Huge pages a bulk pages frame may carry: the engine sends min(batchPages, batchBytes / page size)
 * (one at the defaults), and the real back end takes huge pages only where 16 of them fit a frame
 * (docs/huge-pages.md). The codec's 256 pages would let a peer make the receiver's thread buffer
 * 512 MiB of one frame before refusing it.
 */
export const MAX_HUGE_PAGES_PER_FRAME = 16;

/** Each tag's payload bound for the receiver's thread: the decoder's, and pages frames of huge pages at MAX_HUGE_PAGES_PER_FRAME. */
export function receiverLimits(pageSize: number, pageCount: number): Uint32Array {
  const l = new Uint32Array(TAGS);
  for (let t = 1; t < TAGS; t++) l[t] = Math.min(0xffffffff, maxPayloadBytes(t, { pageSize, pageCount }));
  if (pageSize > HUGE_ABOVE) l[MessageTag.Pages] = Math.min(l[MessageTag.Pages], 4 + MAX_HUGE_PAGES_PER_FRAME * (PAGE_ENTRY_OVERHEAD + pageSize));
  return l;
}

export class NativeBulkConn {
  readonly channel = "bulk" as const;
  readonly peer: string;
  private readonly decoder: FrameDecoder;
  private readonly receiver: BulkReceiverHandle;
  private isDown = false;
  private started = false;
  private stopped = false;
  /** Pages notices taken and the frames they stood for (PPSIM_DATAPLANE_STATS=1 logs them: how much the thread merged). */
  private notices = 0;
  private frames = 0;
  /** The layout's page size (0 before it is known), for a merged notice's wire bytes. */
  private pageSize: number;

  constructor(
    readonly socket: Socket,
    fd: number,
    pageSize: number,
    pageCount: number,
    private readonly handlers: FramedHandlers,
    private readonly initial: Buffer,
    stallMs: number,
    private readonly log?: (line: string) => void,
  ) {
    this.peer = peerName(socket);
    this.pageSize = pageSize;
    this.decoder = new FrameDecoder(pageSize);
    if (pageSize > 0) this.decoder.setLayout(pageSize, pageCount);
    this.receiver = createBulkReceiver(fd, receiverLimits(pageSize, pageCount), stallMs, (n) => this.onNotices(n), switchoverThreadNice());
    socket.on("error", (err) => this.fail(`bulk connection to ${this.peer}: ${err.message}`));
    socket.on("close", () => this.fail(`bulk connection to ${this.peer} closed`));
  }

  get up(): boolean {
    return !this.isDown;
  }

  /** From here on frames are bounded by this layout. */
  setLayout(pageSize: number, pageCount: number): void {
    this.pageSize = pageSize;
    this.decoder.setLayout(pageSize, pageCount);
    this.receiver.setLimits(receiverLimits(pageSize, pageCount));
  }

  /** Bytes of whole frames the receiver took (installed, for pages) on this connection. */
  get taken(): number {
    return this.receiver.received;
  }

  /** Where pages go: the guest's memfd and userfaultfd (its RAM starts at `base`); with a page table, install mode "continue". */
  setTarget(memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number, table?: PageTableHandle | null, holes?: ZeroHoleTableHandle | null): void {
    this.receiver.setTarget(memfd, uffd, base, pageSize, pageCount, table ?? null, holes ?? null);
  }

  /** The guest may run from now on: installs become UFFDIO_COPY / ZEROPAGE, at the bulk threads' nice. */
  setRunning(): void {
    this.receiver.setRunning();
    // Past the switchover: from here on this thread's installs are background to the fault path's.
    this.receiver.setNice(bulkThreadNice());
  }

  start(): void {
    if (this.started || this.isDown) return;
    this.started = true;
    this.receiver.start(this.initial);
  }

  send(msg: Message<Uint8Array>, pageSize: number): number {
    const frame = encodeMessage(msg, pageSize);
    if (!this.isDown) this.socket.write(frame);
    return frame.length;
  }

  get buffered(): number {
    return this.socket.writableLength;
  }

  /** Closes without reporting `down`; frames already written still leave first. */
  close(flushed?: () => void): void {
    this.isDown = true;
    this.stopReceiver();
    if (!this.socket.closed && !this.socket.destroyed) {
      // Node reads again (and drops what it reads) so that it sees the peer's FIN.
      this.socket.on("data", () => undefined);
      resumeNodeReading(this.socket);
    }
    closeGracefully(this.socket, flushed);
  }

  /** Breaks the connection as if the network failed (reports `down`). */
  destroy(reason: string): void {
    this.stopReceiver();
    this.socket.destroy();
    this.fail(reason);
  }

  /** Stops the thread (idempotent); logs its time with PPSIM_DATAPLANE_STATS=1. */
  private stopReceiver(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.receiver.stop();
    this.logStats();
  }

  /** With PPSIM_DATAPLANE_STATS=1, logs where the receiver thread's time went so far; huge pages: always, how they went in. */
  logStats(): void {
    if (this.log === undefined) return;
    const s = this.receiver.stats();
    if (s.hugeDirect + s.hugeStaged > 0) this.log(`bulk receiver: ${s.hugeDirect + s.hugeStaged} huge pages installed by UFFDIO_COPY (${s.hugeDirect} straight from the frame, ${s.hugeStaged} through the staging copy)`);
    if (!dataPlaneStatsWanted()) return;
    this.log(`bulk receiver: ${s.pages} pages (${s.lost} another path's), ${s.received} bytes; waiting ${formatNs(s.waitNs)}, recv ${formatNs(s.recvNs)}, installing ${formatNs(s.installNs)}, waiting for JS ${formatNs(s.jsNs)}; ${this.frames} pages frames in ${this.notices} notices; nice ${s.nice}${s.niceErrno !== 0 ? ` (not set: errno ${s.niceErrno})` : ""}`);
  }

  private onNotices(notices: BulkNotice[]): void {
    for (const n of notices) {
      if (this.isDown) return;
      if (n.kind === "pages") {
        this.notices++;
        this.frames += n.frames;
        this.handlers.message(installedPages(n.pages, n.zero, n.frames, this.pageSize));
      } else if (n.kind === "frame") {
        stamp("d.frame_notice");
        let msgs: Message<Uint8Array>[];
        try {
          msgs = this.decoder.push(n.bytes);
          if (n.refused) this.decoder.check(); // a refused header alone: the decoder names what is wrong
        } catch (e) {
          return this.malformed(messageOf(e));
        }
        if (n.refused) return this.malformed("a frame header the native receiver refused");
        for (const m of msgs) if (!this.isDown) this.handlers.message(m);
        if (!this.isDown) this.receiver.release();
      } else if (n.protocol) {
        return this.malformed(n.reason);
      } else if (n.reason === "stall") {
        return this.destroy(`peer ${this.peer} stopped sending for ${Math.round(n.silentMs / 1000)} s in the middle of a frame on the bulk channel (${n.partial} bytes of it received)`);
      } else {
        this.stopReceiver();
        this.socket.destroy();
        return this.fail(n.error === null ? `bulk connection to ${this.peer} closed` : `bulk connection to ${this.peer}: ${n.error.message}`);
      }
    }
  }

  private malformed(why: string): void {
    const reason = `peer ${this.peer} sent bytes that are not a valid ppsim stream on the bulk channel: ${why}`;
    if (this.handlers.malformed === undefined) return this.destroy(reason);
    if (this.isDown) return;
    this.isDown = true;
    this.stopReceiver();
    this.socket.destroy();
    this.handlers.malformed(reason);
  }

  private fail(reason: string): void {
    if (this.isDown) return;
    this.isDown = true;
    this.stopReceiver();
    this.socket.destroy();
    this.handlers.down(reason);
  }
}
