/**
 * The network between source and destination: full duplex, and per direction
 * one serialiser at the link's bandwidth fed by two queues. Urgent messages go
 * first: one that arrives while a bulk message is on the wire takes over at
 * the next packet boundary (`segmentBytes`, an MTU by default), and the bulk
 * message resumes after it — as a NIC interleaves the packets of two TCP
 * connections. With `sharedChannel` both channels share one FIFO, which shows
 * demand requests waiting behind bulk pages. A message reaches the far side
 * `latency` after its last byte left.
 *
 * Each channel of each direction is a lane with a send window: the sender
 * may add a message while fewer than `windowBytes` of that lane's bytes are
 * queued or on the wire (shared channel: of both lanes together), as a
 * socket takes a write while its kernel buffer has room.
 *
 * How it is simulated: an urgent message's way over the wire is planned
 * when it is sent — nothing later can change it (urgent messages go in
 * order, and only urgent ones cut in) — so its arrival is scheduled then,
 * and the bulk message it cuts into gets its new end by arithmetic, not by
 * events for the cut and the restart. What stays an event: each arrival,
 * the end of each bulk message (when a cut-in moved that end, the event
 * comes again at the new one), and the end of an urgent message only when
 * its lane had refused one since (the sender may pull again then; had the
 * lane room all along, the sender has already pulled what it had). The
 * times are the ones the event-by-event model computed, by the same
 * arithmetic (test/sim-link-model.test.ts checks them against it).
 */
import type { Channel } from "../engine/messages.js";
import { DEFAULT_SEGMENT_BYTES, type Direction, type LinkSpec } from "./link-spec.js";
import { Ends, Fifo } from "./link-queues.js";

export { DEFAULT_SEGMENT_BYTES, formatLink, parseLink, type Direction, type LinkSpec } from "./link-spec.js";

/**
 * The link's own events. Once handed back to `onEvent` an event belongs to
 * the link again, which reuses `tx` and `deliver` objects for later events:
 * whoever schedules them must not keep them past that call.
 */
export type LinkEvent<M> = TxEvent | { type: "room"; dir: Direction; epoch: number } | DeliverEvent<M>;

/** The bulk message on the wire ends at its planned time (a cut-in since moved it: the event comes again then). */
interface TxEvent {
  type: "tx";
  dir: Direction;
  epoch: number;
}

/** A message reaches the far side. */
interface DeliverEvent<M> {
  type: "deliver";
  dir: Direction;
  channel: Channel;
  msg: M;
  epoch: number;
}

export interface LinkHooks<M> {
  schedule(time: number, event: LinkEvent<M>): void;
  /** A lane may take more at `now`: a bulk message's last byte left, or an urgent one's when its lane had refused one. */
  transmitted(dir: Direction, channel: Channel, now: number): void;
  delivered(dir: Direction, channel: Channel, msg: M, now: number): void;
}

interface Queued<M> {
  channel: Channel;
  msg: M;
  bytes: number;
  /** How long it holds the serialiser, in bytes at the link's speed: its bytes, or more when a host's work is slower (src/sim/host.ts). */
  occupancy: number;
  /** Added to the latency: the receiver's work before its engine hears of the message, µs. */
  extraUs: number;
}

class Lane<M> {
  /** Bulk messages waiting (with a shared channel: every message). */
  readonly fifo = new Fifo<Queued<M>>();
  /** The bulk message on the wire, cut into by urgent ones, or next after them; null: none. */
  cur: Queued<M> | null = null;
  /** When `cur` (re)starts, the bytes it has left then, and so when it ends. */
  curStart = 0;
  curRemaining = 0;
  curEnd = 0;
  /** When the last urgent message planned leaves the wire. */
  urgentEnd = -Infinity;
  readonly urgentEnds = new Ends();
  /** A `room` event is on the agenda. */
  roomPending = false;
  /** Messages sent and not yet delivered. */
  inFlight = 0;
  readonly bytes: Record<Channel, number> = { urgent: 0, bulk: 0 };
  /** Bytes given to the lane and not yet fully serialised. */
  readonly inWindow: Record<Channel, number> = { urgent: 0, bulk: 0 };
  /** When the last message of each channel is delivered: a channel delivers in the order it sent. */
  readonly lastDelivery: Record<Channel, number> = { urgent: -Infinity, bulk: -Infinity };
}

export const DEFAULT_WINDOW_BYTES = 256 * 1024;
/** At most this many spare objects of each kind are kept. */
const MAX_SPARE = 256;

export class Link<M> {
  private readonly lanes: [Lane<M>, Lane<M>] = [new Lane<M>(), new Lane<M>()];
  private readonly usPerByte: number;
  private readonly shared: boolean;
  private readonly segment: number;
  private epoch = 0;
  private up = true;
  /**
   * Objects the link made and has back (events handled, bulk messages off
   * the wire), reused so that a message costs no allocation here: a run
   * moves millions of messages, and at most a window's worth is out at once.
   */
  private readonly spareQueued: Queued<M>[] = [];
  private readonly spareTx: TxEvent[] = [];
  private readonly spareDeliver: DeliverEvent<M>[] = [];
  /** Messages lost to outages (queued, on the wire, or sent while down). */
  lost = 0;

  constructor(
    readonly spec: LinkSpec,
    private readonly hooks: LinkHooks<M>,
    readonly windowBytes: number = DEFAULT_WINDOW_BYTES,
  ) {
    if (!(spec.bandwidthBytesPerSec > 0) || !Number.isFinite(spec.bandwidthBytesPerSec)) {
      throw new Error(`link bandwidth must be a positive number of bytes/s, got ${spec.bandwidthBytesPerSec}`);
    }
    if (!(spec.latencyUs >= 0) || !Number.isFinite(spec.latencyUs)) throw new Error(`link latency must be ≥ 0 µs, got ${spec.latencyUs}`);
    this.usPerByte = 1e6 / spec.bandwidthBytesPerSec;
    this.shared = spec.sharedChannel === true;
    this.segment = spec.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
  }

  get isUp(): boolean {
    return this.up;
  }

  /** Bytes fully serialised by `now`, per channel, in one direction. */
  bytesSent(dir: Direction, now: number): Readonly<Record<Channel, number>> {
    const lane = this.lanes[dir];
    this.count(lane, now);
    return lane.bytes;
  }

  /** Messages sent in one direction and not yet delivered (queued, on the wire or travelling). */
  inFlight(dir: Direction): number {
    return this.lanes[dir].inFlight;
  }

  /** Whether this direction's channel can take another message at `now`. */
  hasRoom(dir: Direction, channel: Channel, now: number): boolean {
    if (!this.up) return false;
    const lane = this.lanes[dir];
    const w = lane.inWindow;
    if (this.shared) return w.urgent + w.bulk < this.windowBytes;
    if (channel === "bulk") return w.bulk < this.windowBytes;
    this.count(lane, now);
    if (w.urgent < this.windowBytes) return true;
    // Refused: the sender hears when the first urgent message in the window has left.
    if (!lane.roomPending && lane.urgentEnds.length > 0) {
      lane.roomPending = true;
      this.hooks.schedule(lane.urgentEnds.firstAt, { type: "room", dir, epoch: this.epoch });
    }
    return false;
  }

  /** Microseconds per byte on the wire. */
  get usPerWireByte(): number {
    return this.usPerByte;
  }

  /** `occupancy` (≥ bytes) and `extraUs`: a host's work for the message, from src/sim/host.ts. */
  send(dir: Direction, channel: Channel, msg: M, bytes: number, now: number, occupancy = bytes, extraUs = 0): void {
    if (!this.up) {
      this.lost++;
      return;
    }
    const lane = this.lanes[dir];
    lane.inWindow[channel] += bytes;
    lane.inFlight++;
    const occ = Math.max(bytes, occupancy);
    if (channel === "urgent" && !this.shared) {
      this.planUrgent(dir, lane, msg, bytes, occ, extraUs, now);
      return;
    }
    const q = this.spareQueued.pop();
    if (q === undefined) lane.fifo.push({ channel, msg, bytes, occupancy: occ, extraUs });
    else {
      q.channel = channel;
      q.msg = msg;
      q.bytes = bytes;
      q.occupancy = occ;
      q.extraUs = extraUs;
      lane.fifo.push(q);
    }
    if (lane.cur === null) this.begin(dir, lane, now);
  }

  /**
   * Where an urgent message goes on the wire: behind the urgent ones planned
   * before it; else into the bulk message on the wire at its next packet
   * boundary (the bulk message then resumes after it), or after that message
   * when it ends first; else now.
   */
  private planUrgent(dir: Direction, lane: Lane<M>, msg: M, bytes: number, occ: number, extraUs: number, now: number): void {
    const upb = this.usPerByte;
    let start: number;
    // Whether `cur` waits for the urgent messages to end (cut into, or next after them).
    let behind: boolean;
    if (lane.urgentEnd > now) {
      start = lane.urgentEnd;
      behind = lane.cur !== null && lane.curStart === lane.urgentEnd;
    } else if (lane.cur !== null) {
      const sentBytes = (now - lane.curStart) / upb;
      const boundary = Math.min(lane.curRemaining, Math.ceil(sentBytes / this.segment - 1e-9) * this.segment);
      behind = boundary < lane.curRemaining;
      if (behind) {
        start = lane.curStart + boundary * upb;
        lane.curRemaining = lane.curRemaining - (start - lane.curStart) / upb;
      } else start = lane.curEnd; // it ends before a boundary: after it
    } else {
      start = now;
      behind = false;
    }
    const end = start + occ * upb;
    lane.urgentEnd = end;
    lane.urgentEnds.push(end, bytes);
    if (behind) {
      lane.curStart = end;
      lane.curEnd = end + lane.curRemaining * upb;
    }
    this.hooks.schedule(this.inOrder(lane, "urgent", end + this.spec.latencyUs + extraUs), this.deliverEvent(dir, "urgent", msg));
  }

  /**
   * A channel's messages reach the receiver's engine in the order they were
   * sent, as a connection's frames do: one whose host work is short (a few
   * pages) waits for the one before it whose work is long (a full batch). Without
   * this, a pre-copy's later round overtook an earlier one carrying the same
   * pages and the destination kept the older copy (the run failed to verify).
   */
  private inOrder(lane: Lane<M>, channel: Channel, at: number): number {
    const t = Math.max(at, lane.lastDelivery[channel]);
    lane.lastDelivery[channel] = t;
    return t;
  }

  /** The next bulk message goes on the wire: now, or after the urgent ones planned. */
  private begin(dir: Direction, lane: Lane<M>, now: number): void {
    const q = lane.fifo.take();
    if (q === undefined) return;
    const start = lane.urgentEnd > now ? lane.urgentEnd : now;
    lane.cur = q;
    lane.curStart = start;
    lane.curRemaining = q.occupancy;
    lane.curEnd = start + q.occupancy * this.usPerByte;
    const tx = this.spareTx.pop();
    if (tx === undefined) this.hooks.schedule(lane.curEnd, { type: "tx", dir, epoch: this.epoch });
    else {
      tx.dir = dir;
      tx.epoch = this.epoch;
      this.hooks.schedule(lane.curEnd, tx);
    }
  }

  private deliverEvent(dir: Direction, channel: Channel, msg: M): DeliverEvent<M> {
    const ev = this.spareDeliver.pop();
    if (ev === undefined) return { type: "deliver", dir, channel, msg, epoch: this.epoch };
    ev.dir = dir;
    ev.channel = channel;
    ev.msg = msg;
    ev.epoch = this.epoch;
    return ev;
  }

  /** An event handled for good (not scheduled again): the link may reuse it. */
  private release(ev: LinkEvent<M>): void {
    if (ev.type === "tx") {
      if (this.spareTx.length < MAX_SPARE) this.spareTx.push(ev);
    } else if (ev.type === "deliver") {
      if (this.spareDeliver.length < MAX_SPARE) this.spareDeliver.push(ev);
    }
  }

  /** Counts the urgent messages that have left the wire by `now` as sent. */
  private count(lane: Lane<M>, now: number): void {
    const ends = lane.urgentEnds;
    while (ends.length > 0 && ends.firstAt <= now) {
      const b = ends.take();
      lane.bytes.urgent += b;
      lane.inWindow.urgent -= b;
    }
  }

  onEvent(ev: LinkEvent<M>, now: number): void {
    if (ev.epoch !== this.epoch) return this.release(ev); // lost in an outage
    const lane = this.lanes[ev.dir];
    if (ev.type === "deliver") {
      lane.inFlight--;
      this.hooks.delivered(ev.dir, ev.channel, ev.msg, now);
      // After the hook: what it sent meanwhile took other objects.
      return this.release(ev);
    }
    if (ev.type === "room") {
      lane.roomPending = false;
      this.count(lane, now);
      this.hooks.transmitted(ev.dir, "urgent", now);
      return;
    }
    const done = lane.cur;
    if (done === null) return this.release(ev);
    if (lane.curEnd > now) {
      this.hooks.schedule(lane.curEnd, ev); // cut into since: it ends later
      return;
    }
    const dir = ev.dir;
    this.release(ev);
    this.count(lane, now);
    lane.cur = null;
    lane.bytes[done.channel] += done.bytes;
    lane.inWindow[done.channel] -= done.bytes;
    this.hooks.schedule(this.inOrder(lane, done.channel, now + this.spec.latencyUs + done.extraUs), this.deliverEvent(dir, done.channel, done.msg));
    if (this.spareQueued.length < MAX_SPARE) this.spareQueued.push(done);
    this.hooks.transmitted(dir, done.channel, now);
    if (lane.cur === null) this.begin(dir, lane, now);
  }

  /** The link breaks at `now`: everything queued or travelling is lost. */
  goDown(now: number): void {
    if (!this.up) return;
    this.up = false;
    this.epoch++;
    for (const lane of this.lanes) {
      this.count(lane, now);
      this.lost += lane.inFlight;
      lane.inFlight = 0;
      lane.fifo.clear();
      lane.cur = null;
      lane.urgentEnd = -Infinity;
      lane.urgentEnds.clear();
      lane.roomPending = false;
      lane.inWindow.urgent = 0;
      lane.inWindow.bulk = 0;
      // What was travelling is lost: the next epoch's messages wait for none of it.
      lane.lastDelivery.urgent = -Infinity;
      lane.lastDelivery.bulk = -Infinity;
    }
  }

  goUp(): void {
    this.up = true;
  }
}
