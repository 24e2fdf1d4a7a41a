/**
 * The simulated link as it was before the fourth speed pass (issue 14): every
 * transition an event of its own (a cut-in's preempt, each message's end of
 * transmission, the bulk message's restart). Kept, unchanged in behaviour, as
 * the reference src/sim/link.ts is checked against (test/sim-link-model.test.ts).
 *
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
 */
import type { Channel } from "../../src/engine/messages.js";
import { DEFAULT_SEGMENT_BYTES, type Direction, type LinkSpec } from "../../src/sim/link-spec.js";
import { Fifo } from "../../src/sim/link-queues.js";

export type EventLinkEvent<M> =
  /** The message on the wire is done (`gen` tells a stale one after a cut-in). */
  | { type: "tx"; dir: Direction; epoch: number; gen: number }
  /** A packet boundary of the bulk message on the wire: urgent messages take over here. */
  | { type: "preempt"; dir: Direction; epoch: number; gen: number }
  | { type: "deliver"; dir: Direction; channel: Channel; msg: M; epoch: number };

export interface EventLinkHooks<M> {
  schedule(time: number, event: EventLinkEvent<M>): void;
  /** The message's last byte left the sender at `now`: its lane has room again. */
  transmitted(dir: Direction, channel: Channel, bytes: number, now: number): void;
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
  readonly urgent = new Fifo<Queued<M>>();
  readonly bulk = new Fifo<Queued<M>>();
  sending: Queued<M> | null = null;
  /** When the message on the wire started, and how many of its bytes were left then. */
  startedAt = 0;
  remaining = 0;
  /** A bulk message interrupted by urgent ones, with the bytes it has left. */
  suspended: { q: Queued<M>; remaining: number } | null = null;
  /** Bumped whenever the wire's schedule changes, so outdated tx events are ignored. */
  gen = 0;
  preemptPending = false;
  /** Messages past the sender, not yet delivered. */
  propagating = 0;
  readonly bytes: Record<Channel, number> = { urgent: 0, bulk: 0 };
  /** Bytes given to the lane and not yet fully serialised. */
  readonly inWindow: Record<Channel, number> = { urgent: 0, bulk: 0 };
  messages = 0;
  /** A channel delivers in the order it sent (as the planned link: a receiver takes a connection's frames in order). */
  readonly lastDelivery: Record<Channel, number> = { urgent: -Infinity, bulk: -Infinity };
}

const DEFAULT_WINDOW_BYTES = 256 * 1024;

export class EventLink<M> {
  private readonly lanes: [Lane<M>, Lane<M>] = [new Lane<M>(), new Lane<M>()];
  private readonly usPerByte: number;
  private readonly shared: boolean;
  private epoch = 0;
  private up = true;
  /** Messages lost to outages (queued, on the wire, or sent while down). */
  lost = 0;

  constructor(
    readonly spec: LinkSpec,
    private readonly hooks: EventLinkHooks<M>,
    readonly windowBytes: number = DEFAULT_WINDOW_BYTES,
  ) {
    if (!(spec.bandwidthBytesPerSec > 0) || !Number.isFinite(spec.bandwidthBytesPerSec)) {
      throw new Error(`link bandwidth must be a positive number of bytes/s, got ${spec.bandwidthBytesPerSec}`);
    }
    if (!(spec.latencyUs >= 0) || !Number.isFinite(spec.latencyUs)) throw new Error(`link latency must be ≥ 0 µs, got ${spec.latencyUs}`);
    this.usPerByte = 1e6 / spec.bandwidthBytesPerSec;
    this.shared = spec.sharedChannel === true;
  }

  get isUp(): boolean {
    return this.up;
  }

  /** Bytes fully serialised so far, per channel, in one direction. */
  bytesSent(dir: Direction): Readonly<Record<Channel, number>> {
    return this.lanes[dir].bytes;
  }

  /** Messages waiting (not yet on the wire) in one direction. */
  queued(dir: Direction): number {
    const lane = this.lanes[dir];
    return lane.urgent.length + lane.bulk.length;
  }

  /** Whether this direction's channel can take another message now. */
  hasRoom(dir: Direction, channel: Channel): boolean {
    if (!this.up) return false;
    const w = this.lanes[dir].inWindow;
    return (this.shared ? w.urgent + w.bulk : channel === "bulk" ? w.bulk : w.urgent) < this.windowBytes;
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
    const q = { channel, msg, bytes, occupancy: Math.max(bytes, occupancy), extraUs };
    if (channel === "urgent" && !this.spec.sharedChannel) {
      lane.urgent.push(q);
      if (lane.sending !== null && lane.sending.channel === "bulk") this.schedulePreempt(dir, now);
    } else lane.bulk.push(q);
    if (lane.sending === null) this.startNext(dir, now);
  }

  /** An urgent message waits behind a bulk one on the wire: cut in at its next packet boundary. */
  private schedulePreempt(dir: Direction, now: number): void {
    const lane = this.lanes[dir];
    if (lane.preemptPending) return;
    const segment = this.spec.segmentBytes ?? DEFAULT_SEGMENT_BYTES;
    const sentBytes = (now - lane.startedAt) / this.usPerByte;
    const boundary = Math.min(lane.remaining, Math.ceil(sentBytes / segment - 1e-9) * segment);
    if (boundary >= lane.remaining) return; // it ends before a boundary: let it finish
    lane.preemptPending = true;
    this.hooks.schedule(lane.startedAt + boundary * this.usPerByte, { type: "preempt", dir, epoch: this.epoch, gen: lane.gen });
  }

  onEvent(ev: EventLinkEvent<M>, now: number): void {
    if (ev.epoch !== this.epoch) return; // lost in an outage
    if (ev.type === "deliver") {
      this.lanes[ev.dir].propagating--;
      this.hooks.delivered(ev.dir, ev.channel, ev.msg, now);
      return;
    }
    const lane = this.lanes[ev.dir];
    if (ev.gen !== lane.gen) return; // rescheduled by a cut-in
    if (ev.type === "preempt") {
      lane.preemptPending = false;
      const bulk = lane.sending as Queued<M>;
      lane.suspended = { q: bulk, remaining: lane.remaining - (now - lane.startedAt) / this.usPerByte };
      lane.sending = null;
      lane.gen++;
      this.startNext(ev.dir, now);
      return;
    }
    const done = lane.sending as Queued<M>;
    lane.sending = null;
    lane.bytes[done.channel] += done.bytes;
    lane.inWindow[done.channel] -= done.bytes;
    lane.messages++;
    lane.propagating++;
    const at = Math.max(now + this.spec.latencyUs + done.extraUs, lane.lastDelivery[done.channel]);
    lane.lastDelivery[done.channel] = at;
    this.hooks.schedule(at, { type: "deliver", dir: ev.dir, channel: done.channel, msg: done.msg, epoch: this.epoch });
    this.hooks.transmitted(ev.dir, done.channel, done.bytes, now);
    if (lane.sending === null) this.startNext(ev.dir, now);
  }

  /** The link breaks: everything queued or travelling is lost. */
  goDown(): void {
    if (!this.up) return;
    this.up = false;
    this.epoch++;
    for (const lane of this.lanes) {
      this.lost += lane.urgent.length + lane.bulk.length + (lane.sending ? 1 : 0) + lane.propagating;
      lane.propagating = 0;
      lane.urgent.clear();
      lane.bulk.clear();
      if (lane.suspended) this.lost++;
      lane.suspended = null;
      lane.sending = null;
      lane.preemptPending = false;
      lane.gen++;
      lane.inWindow.urgent = 0;
      lane.inWindow.bulk = 0;
      lane.lastDelivery.urgent = -Infinity;
      lane.lastDelivery.bulk = -Infinity;
    }
  }

  goUp(): void {
    this.up = true;
  }

  private startNext(dir: Direction, now: number): void {
    const lane = this.lanes[dir];
    let next = lane.urgent.take();
    let remaining = next?.occupancy ?? 0;
    if (next === undefined && lane.suspended !== null) {
      next = lane.suspended.q;
      remaining = lane.suspended.remaining;
      lane.suspended = null;
    }
    if (next === undefined) {
      next = lane.bulk.take();
      if (next === undefined) return;
      remaining = next.occupancy;
    }
    lane.sending = next;
    lane.startedAt = now;
    lane.remaining = remaining;
    this.hooks.schedule(now + remaining * this.usPerByte, { type: "tx", dir, epoch: this.epoch, gen: lane.gen });
    // Urgent messages that queued up while the wire was busy cut into a bulk message too.
    if (next.channel === "bulk" && lane.urgent.length > 0) this.schedulePreempt(dir, now);
  }
}

