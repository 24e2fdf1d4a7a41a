/**
 * The fault lane (issue 9; docs/real.md "The fault lane"): a connection of
 * its own per session and epoch, owned by native threads at both ends, so
 * that no Node event loop is on a demand fault's way. At the destination the
 * fault reader thread writes each missing fault's request on it and the
 * lane's thread installs the reply (native/src/fault_lane.cc); at the source
 * a thread answers from the guest's memfd (lane_server.cc). JS hears what
 * happened, in batches, and books it in the engines: the faults (as
 * requested) and installs at the destination, the pages served at the source.
 *
 * This file holds both ends' JS faces: the socket's lifecycle around the
 * native object. Which connection is the lane and when it is armed is the
 * sessions' slots (source-lane-slot.ts, dest-lane-slot.ts).
 */
import type { Socket } from "node:net";
import { plainSocketFd, stopNodeReading } from "./dataplane.js";
import { raiseLaneThread } from "./lane-priority.js";
import { createFaultLane, createLaneServer, type FaultLaneHandle, type LaneNotice, type LaneServerHandle, type LaneServerNotice, type PageTableHandle } from "./native.js";

/**
 * The destination's helloAck carries this bit when it takes a fault lane (the
 * real drivers' capability, not the engine's: the destination's session adds
 * it to the engine's helloAck; the source's engine keeps bits it does not
 * know and ignores them). A destination without it never sees a lane.
 */
export const FAULT_LANE_CAPABILITY = 1 << 16;

/** PPSIM_FAULT_LANE=0 turns the lane off (demand faults go the JS way, on the urgent connection); default on (docs/real-benchmarks.md "The fault lane"). */
export function faultLaneWanted(): boolean {
  return process.env.PPSIM_FAULT_LANE !== "0";
}

/** Takes a socket from Node for a native thread: its fd, or -1 (TLS, or Node holds unread bytes). */
function takeSocket(socket: Socket): number {
  const fd = plainSocketFd(socket);
  if (fd < 0 || !stopNodeReading(socket)) return -1;
  // The thread reports the socket's end; Node's events on it say nothing more.
  socket.on("error", () => undefined);
  return fd;
}

export interface SourceLaneHandlers {
  /** The destination attached its end (its first frame). */
  attached(): void;
  served(pages: Uint32Array, zero: Uint8Array, bytes: number): void;
  /** The lane ended (closed, failed, or the peer's bytes were not a lane stream: protocol). */
  end(reason: string, protocol: boolean): void;
  /** A log line (PPSIM_LANE_RR refused, lane-priority.ts). */
  log?(line: string): void;
}

/** The source's end: requests answered from the memfd by a native thread. */
export class SourceLane {
  private readonly server: LaneServerHandle;
  private stopped = false;

  /** null when the socket cannot be handed to a thread (then there is no lane). */
  static open(socket: Socket, memfd: number, pageSize: number, pageCount: number, stallMs: number, released: Uint32Array, h: SourceLaneHandlers): SourceLane | null {
    const fd = takeSocket(socket);
    if (fd < 0) return null;
    return new SourceLane(socket, fd, memfd, pageSize, pageCount, stallMs, released, h);
  }

  private constructor(
    private readonly socket: Socket,
    fd: number,
    memfd: number,
    pageSize: number,
    pageCount: number,
    stallMs: number,
    released: Uint32Array,
    h: SourceLaneHandlers,
  ) {
    this.server = createLaneServer(fd, memfd, pageSize, pageCount, stallMs, (notices: LaneServerNotice[]) => {
      for (const n of notices) {
        if (this.stopped) return;
        if (n.kind === "attached") h.attached();
        else if (n.kind === "served") h.served(n.pages, n.zero, n.bytes);
        else h.end(n.error !== null ? `fault lane: ${n.error.message}` : n.reason, n.protocol);
      }
    });
    // Pages punched before this lane opened (an earlier epoch's) are never served either.
    if (released.length > 0) this.server.release(released);
    this.server.start(new Uint8Array(0));
    raiseLaneThread("lane server", this.server.tid(), h.log);
  }

  /** The switchover went out: the guest here is paused for good. */
  arm(): void {
    if (!this.stopped) this.server.arm();
  }

  /** Before these pages are punched out. */
  release(pages: Uint32Array): void {
    if (!this.stopped) this.server.release(pages);
  }

  stats(): ReturnType<LaneServerHandle["stats"]> {
    return this.server.stats();
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.server.stop();
    this.socket.destroy();
  }
}

/** The destination's end: requests written by the fault reader thread, replies installed by the lane's. */
export class DestLane {
  private readonly lane: FaultLaneHandle;
  private stopped = false;
  private started = false;

  /** null when the socket cannot be handed to a thread. */
  static open(socket: Socket, initial: Buffer, stallMs: number, onNotices: (n: LaneNotice[]) => void, log?: (line: string) => void): DestLane | null {
    const fd = takeSocket(socket);
    if (fd < 0) return null;
    return new DestLane(socket, fd, initial, stallMs, onNotices, log);
  }

  private constructor(
    private readonly socket: Socket,
    fd: number,
    private readonly initial: Buffer,
    stallMs: number,
    onNotices: (n: LaneNotice[]) => void,
    private readonly log?: (line: string) => void,
  ) {
    this.lane = createFaultLane(fd, stallMs, (n) => {
      if (!this.stopped) onNotices(n);
    });
  }

  get handle(): FaultLaneHandle {
    return this.lane;
  }

  setTarget(memfd: number, uffd: number, base: bigint, pageSize: number, pageCount: number, table: PageTableHandle | null): void {
    this.lane.setTarget(memfd, uffd, base, pageSize, pageCount, table ?? undefined);
  }

  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.lane.start(this.initial);
    raiseLaneThread("fault lane", this.lane.tid(), this.log);
  }

  /** The guest may run: faults are requested on the lane from now on. */
  arm(): void {
    if (!this.stopped) this.lane.arm();
  }

  stats(): ReturnType<FaultLaneHandle["stats"]> {
    return this.lane.stats();
  }

  /** Stops the thread and closes the lane; returns the notices not delivered yet (their faults must still reach the engine). */
  stop(): LaneNotice[] {
    if (this.stopped) return [];
    this.stopped = true;
    const rest = this.lane.stop();
    this.socket.destroy();
    return rest;
  }
}
