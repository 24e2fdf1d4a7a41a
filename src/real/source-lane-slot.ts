/**
 * The source link's slot for its fault lane (fault-lane.ts): once the
 * destination answered the hello with the lane's capability (its session
 * exists, a lane may join it), one lane per epoch, opened beside the epoch's
 * urgent and bulk connections and armed when the switchover goes out; the
 * first helloAck is held from the engine until the first lane is open; the
 * pages punched out of the memfd are marked so that no lane of any epoch
 * serves them. Which connections form an epoch and what a failure means stay
 * the link's (source-link.ts).
 */
import type { Socket } from "node:net";
import type { Channel, Message } from "../engine/messages.js";
import { messageOf } from "./errors.js";
import { FAULT_LANE_CAPABILITY, SourceLane } from "./fault-lane.js";
import type { Security } from "./tls.js";
import { connectChannel, DEFAULT_STALL_MS } from "./transport.js";

/** An epoch's connections, as far as the slot sees them: the link's token for an epoch, and the lane it holds. */
export interface LaneHolder {
  lane?: SourceLane;
}

export interface SourceLaneSlotHooks {
  /** Whether lanes are opened at all: the native data plane's conditions (plain TCP, base pages) and PPSIM_FAULT_LANE. */
  wanted(): boolean;
  /** Whether the switchover went out: a lane opened from now on is armed at once. */
  armed(): boolean;
  /** Whether `h` still is the link's current epoch. */
  isCurrent(h: LaneHolder): boolean;
  /** The lane of epoch `h` failed: the link is down. */
  down(h: LaneHolder, reason: string): void;
  /** The destination's bytes on the lane of epoch `h` were not a lane stream. */
  malformed(h: LaneHolder, reason: string): void;
  /** A message for the engine (a held one, in its order). */
  deliver(msg: Message<Uint8Array>, channel: Channel): void;
  note(line: string): void;
  /** The current epoch's lane answered demand requests with these pages. */
  served(pages: Uint32Array, zero: Uint8Array, bytes: number): void;
}

export interface SourceLaneSlotOptions {
  host: string;
  port: number;
  session: string;
  security: Security;
  connectTimeoutMs: number;
  /** The guest's memfd and layout: what a lane serves from (none without it). */
  dataPlane?: { memfd: number; pageSize: number; pageCount: number };
}

export class SourceLaneSlot {
  /** The destination answered the hello and takes a fault lane: its session exists, a lane may join it. */
  private formed = false;
  /** Messages of an epoch that came while the first lane opened, for the engine after it (null: none held). */
  private held: { h: LaneHolder; msgs: [Message<Uint8Array>, Channel][] } | null = null;
  /** Pages punched out of the memfd so far (1 each): no lane of any epoch serves them. */
  private released: Uint8Array | null = null;
  /** Fault lanes opened, over every epoch. */
  lanesOpened = 0;

  constructor(
    private readonly o: SourceLaneSlotOptions,
    private readonly hooks: SourceLaneSlotHooks,
  ) {}

  private get peer(): string {
    return `${this.o.host}:${this.o.port}`;
  }

  /** A new epoch's connections are open: its lane too, once the session has formed at the destination. */
  newEpoch(h: LaneHolder, epoch: number): void {
    if (this.formed) void this.open(h, epoch);
  }

  /**
   * A message of epoch `h` on its way to the engine: whether the slot took
   * it (held while the first lane opens, the first helloAck that says the
   * destination takes a lane among them).
   */
  intercept(h: LaneHolder, m: Message<Uint8Array>, channel: Channel, epoch: number): boolean {
    if (this.held !== null && this.held.h === h) {
      this.held.msgs.push([m, channel]);
      return true;
    }
    if (m.type !== "helloAck" || this.formed || (m.capabilities & FAULT_LANE_CAPABILITY) === 0) return false;
    this.formed = true;
    // The engine hears the answer once the destination has attached the lane (or it could not be
    // opened, or did not attach in time): in post-copy it pauses the guest on it, and a lane attached
    // meanwhile put its connect, the destination's accept and its thread's start into the downtime
    // (2–6 ms at 4 GiB, docs/real-benchmarks.md "The fault lane"). What comes meanwhile waits, in order.
    const held = { h, msgs: [[m, channel]] as [Message<Uint8Array>, Channel][] };
    this.held = held;
    void this.open(h, epoch).finally(() => {
      if (this.held === held) this.held = null;
      for (const [hm, hc] of held.msgs) if (this.hooks.isCurrent(h)) this.hooks.deliver(hm, hc);
    });
    return true;
  }

  /** The switchover went out on epoch `h`: the guest here is paused for good. */
  arm(h: LaneHolder): void {
    h.lane?.arm();
  }

  /** These pages are about to be punched out of the memfd: no lane (`h`'s, or any later epoch's) answers them from now on. */
  release(h: LaneHolder | null, pages: Uint32Array): void {
    const dp = this.o.dataPlane;
    if (dp === undefined) return;
    const r = (this.released ??= new Uint8Array(dp.pageCount));
    for (const p of pages) if (p < r.length) r[p] = 1;
    h?.lane?.release(pages);
  }

  /** Epoch `h` is over: its lane stops. */
  stop(h: LaneHolder): void {
    const lane = h.lane;
    if (lane === undefined) return;
    lane.stop();
    const s = lane.stats();
    if (s.requests > 0) this.hooks.note(`fault lane: ${s.requests} requests, ${s.served} served (${s.bytes} bytes), ${s.released} for released pages not answered`);
  }

  /**
   * Epoch `h`'s fault lane; one that cannot be opened is only a note (faults
   * then go the JS way, on urgent). Resolves once the destination said it
   * attached, the lane ended, or the connect timeout passed since the lane
   * opened (a peer that never says so delays the engine's helloAck by that
   * much, once; the lane stays and serves if it is used after all).
   */
  private async open(h: LaneHolder, epoch: number): Promise<void> {
    const o = this.o;
    const dp = o.dataPlane;
    if (!this.hooks.wanted() || dp === undefined || h.lane !== undefined) return;
    let socket: Socket;
    try {
      socket = await connectChannel(o.host, o.port, { channel: "urgent", lane: true, session: o.session, epoch, info: "" }, o.connectTimeoutMs, undefined, o.security);
    } catch (e) {
      this.hooks.note(`fault lane to ${this.peer} not opened: ${messageOf(e)}`);
      return;
    }
    if (!this.hooks.isCurrent(h) || h.lane !== undefined) {
      socket.destroy();
      return;
    }
    const released = this.released === null ? new Uint32Array(0) : Uint32Array.from(this.releasedPages());
    let heard: () => void = () => undefined;
    const attached = new Promise<void>((resolve) => (heard = resolve));
    const lane = SourceLane.open(socket, dp.memfd, dp.pageSize, dp.pageCount, DEFAULT_STALL_MS, released, {
      attached: () => heard(),
      served: (pages, zero, bytes) => {
        // An earlier epoch's: what the destination got of it, its recover message says.
        if (this.hooks.isCurrent(h)) this.hooks.served(pages, zero, bytes);
      },
      end: (reason, protocol) => {
        heard();
        if (protocol) this.hooks.malformed(h, `the destination sent bytes that are not a valid fault lane stream: ${reason}`);
        else this.hooks.down(h, `fault lane to ${this.peer}: ${reason}`);
      },
      log: (line) => this.hooks.note(line),
    });
    if (lane === null) {
      socket.destroy();
      this.hooks.note(`fault lane to ${this.peer} not opened: its socket cannot be handed to a native thread`);
      return;
    }
    h.lane = lane;
    this.lanesOpened++;
    if (this.hooks.armed()) lane.arm();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), o.connectTimeoutMs).unref()));
    const timedOut = await Promise.race([attached.then(() => false), late]);
    clearTimeout(timer);
    if (timedOut) this.hooks.note(`fault lane to ${this.peer}: the destination did not say it attached within ${o.connectTimeoutMs} ms (going on without waiting)`);
  }

  private *releasedPages(): Generator<number> {
    const r = this.released;
    if (r === null) return;
    for (let p = 0; p < r.length; p++) if (r[p] === 1) yield p;
  }
}
