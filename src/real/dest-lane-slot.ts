/**
 * The destination session's slot for its fault lane (fault-lane.ts): the
 * lane of the current epoch, attached when its connection arrives, aimed at
 * the guest once it exists, armed once the guest may run, closed with the
 * epoch's other connections; and the lane's notices turned into the
 * engine's inputs. Which epoch is current and what a failed link means stay
 * the session's (dest-session.ts).
 */
import type { Socket } from "node:net";
import { encodeMessage } from "../engine/codec.js";
import type { DestinationInput } from "../engine/events.js";
import type { Message } from "../engine/messages.js";
import { monoToNowUs } from "./clock.js";
import { installedPages, nativeDataPlaneWanted } from "./dataplane.js";
import type { DestinationMemory } from "./dest-memory.js";
import { DestLane, FAULT_LANE_CAPABILITY } from "./fault-lane.js";
import type { DestFaultTrace } from "./fault-trace.js";
import type { GuestProcess } from "./guest-process.js";
import type { LaneNotice } from "./native.js";
import { DEFAULT_STALL_MS, type Accepted } from "./transport.js";

/** The lane's first frame from the destination, "attached": the lane's own helloAck (native/src/fault_lane.h kLaneAttachedFrame). */
export const LANE_ATTACHED_FRAME = encodeMessage({ type: "helloAck", version: 1, capabilities: FAULT_LANE_CAPABILITY }, 0);

export interface DestLaneSlotHooks {
  /** A log line (the session tags it). */
  log(line: string): void;
  dispatch(ev: DestinationInput<Uint8Array>): void;
  /** The session ended: no notice reaches the engine any more. */
  ended(): boolean;
  /** The lane of the current epoch failed: the link is down. */
  linkFailed(reason: string): void;
  /** The guest and its memory, once spawned. */
  guest(): GuestProcess | null;
  memory(): DestinationMemory | null;
}

export class DestLaneSlot {
  /** This epoch's fault lane, armed once the guest may run. */
  private lane: DestLane | null = null;
  /** The lane's socket when this end cannot use it (no native thread for it): held open, unused, until the link goes. */
  private idle: Socket | null = null;

  constructor(
    private readonly h: DestLaneSlotHooks,
    /** PPSIM_FAULT_TRACE: each fault's stamps; null when off. */
    private readonly trace: DestFaultTrace | null,
  ) {}

  /** This end takes a fault lane: the source learns it from the helloAck (the bit is the real drivers', not the engine's). */
  announce(msg: Message<Uint8Array>): Message<Uint8Array> {
    if (msg.type === "helloAck" && nativeDataPlaneWanted()) return { ...msg, capabilities: msg.capabilities | FAULT_LANE_CAPABILITY };
    return msg;
  }

  /**
   * The fault lane of the current epoch (the session checked the epoch).
   * Faults are requested on it by the fault reader thread once the guest may
   * run; one this end cannot hand to a native thread is held open unused
   * (the source's lane then only idles).
   */
  attach(a: Accepted, epoch: number): void {
    this.close();
    const lane = nativeDataPlaneWanted() ? DestLane.open(a.socket, a.rest, a.framing?.stallMs ?? DEFAULT_STALL_MS, (n) => this.onLane(lane, n), (l) => this.h.log(l)) : null;
    if (lane === null) {
      this.idle = a.socket;
      a.socket.on("error", () => undefined);
      // Attached all the same (it only idles): the source need not wait for it.
      a.socket.write(LANE_ATTACHED_FRAME);
      return;
    }
    this.lane = lane;
    if (epoch === 0) this.h.log(`fault lane open (demand faults requested and installed by native threads)`);
    // Started (its first frame tells the source it attached) before armed: no request goes ahead of that frame.
    const aimed = this.aim();
    lane.start();
    if (aimed && this.h.memory()?.running === true) this.arm();
  }

  /** The guest exists: the lane installs into its memory. Whether there was a lane to aim. */
  aim(): boolean {
    const lane = this.lane;
    const g = this.h.guest();
    const mem = this.h.memory();
    if (lane === null || g === null || mem === null) return false;
    lane.setTarget(g.memfd, g.uffd, g.layout.base, mem.pageSize, mem.pageCount, mem.table);
    return true;
  }

  /** The guest may run: the lane takes the faults from the fault reader. */
  arm(): void {
    const lane = this.lane;
    const mem = this.h.memory();
    if (lane === null || mem === null) return;
    lane.arm();
    mem.setLane(lane.handle);
  }

  /** The epoch's end (or the session's): faults go back to the fault reader's JS path; what the lane took meanwhile reaches the engine. */
  close(): void {
    this.idle?.destroy();
    this.idle = null;
    const lane = this.lane;
    if (lane === null) return;
    this.lane = null;
    this.h.memory()?.setLane(null);
    this.onLane(lane, lane.stop());
    const s = lane.stats();
    if (s.requests > 0 || s.replies > 0) this.h.log(`fault lane: ${s.requests} requests, ${s.replies} replies, ${s.installs} pages installed (${s.lost} another path's)${s.hugeDirect + s.hugeStaged > 0 ? `; huge pages by UFFDIO_COPY: ${s.hugeDirect} straight from the reply, ${s.hugeStaged} staged` : ""}`);
  }

  /** The lane's notices, in the order they happened: faults (requested on the lane), installs, its end. */
  private onLane(lane: DestLane | null, notices: LaneNotice[]): void {
    const toEngine = monoToNowUs();
    for (const n of notices) {
      if (this.h.ended()) return;
      if (n.kind === "faults") {
        for (let i = 0; i < n.pages.length; i++) {
          this.trace?.fault(n.pages[i], n.atUs);
          this.h.dispatch({ kind: "fault", page: n.pages[i], vcpu: n.tids[i], requested: n.requested[i] === 1, at: n.atUs + toEngine });
        }
      } else if (n.kind === "installed") {
        // In guest memory already (the vCPU woken): the engine books them, from any epoch's lane.
        const msg = { ...installedPages(n.pages, n.zero), installedAt: n.atUs + toEngine };
        this.trace?.arrived(n.pages, "urgent");
        this.h.dispatch({ kind: "message", msg, channel: "urgent" });
      } else if (lane !== null && lane === this.lane) {
        this.h.log(n.reason);
        if (n.protocol) this.h.dispatch({ kind: "malformed", reason: `the source sent bytes that are not a valid fault lane stream: ${n.reason}` });
        this.h.linkFailed(n.error !== null ? `fault lane: ${n.error.message}` : n.reason);
      }
    }
  }
}
