/**
 * What the engines' actions do in the simulated world: their messages onto
 * the simulated link (with the host's CPU cost when a host profile is set),
 * their deadlines onto the agenda, their guest actions onto the simulated
 * guests. The run loop (simulation.ts) drives the engines with these.
 */
import { encodedSize } from "../engine/codec.js";
import type { Destination } from "../engine/destination.js";
import type { DestinationEffects, SourceEffects } from "../engine/drive.js";
import type { Channel } from "../engine/messages.js";
import type { TaskedGuest } from "./async-faults.js";
import type { EngineTimers } from "./engine-timers.js";
import type { EventQueue } from "./event-queue.js";
import type { ExpectedMemory } from "./expected-memory.js";
import type { Guest } from "./guest.js";
import { messageCostUs, occupancyBytes, type HostProfile } from "./host.js";
import { faultWakeUs, streamDuty, withStreaming } from "./host-cpu.js";
import { firstStepUs, pauseLegsUs } from "./host-switchover.js";
import type { Direction, Link } from "./link.js";
import type { Msg, SimEvent } from "./sim-config.js";
import type { StandbyRun } from "./standby-run.js";

/** The parts of a simulated run the engines act on. */
export interface SimWorld {
  /** The time of the event being handled. */
  clock(): number;
  pageSize: number;
  link: Link<Msg>;
  queue: EventQueue<SimEvent>;
  timers: EngineTimers;
  srcGuest: Guest | TaskedGuest;
  dstGuest: Guest | TaskedGuest;
  dest: Destination<number>;
  expected: ExpectedMemory;
  host: HostProfile | null;
  /** The destination leaves zero pages holes (base pages, memory not populated ahead: host-runs.ts). */
  zeroHoles: boolean;
  standby: StandbyRun;
  /** A side's engine ended the migration. */
  finish(outcome: "completed" | "cancelled" | "failed", reason: string): void;
  releasePages(count: number): void;
}

/** How busy the page stream keeps the cores on this run's link (host-cpu.ts streamDuty). */
export function duty(w: SimWorld): number {
  return w.host === null ? 1 : streamDuty(w.host, w.link.spec.bandwidthBytesPerSec);
}

/** The source's effects, and the park of its guest that a host's `park_us` puts after the engine's decision (host-switchover.ts). */
export function sourceEffects(w: SimWorld): SourceEffects<number> & { park(): void } {
  const guest = w.srcGuest;
  /** Its vCPU state from the switchover pause, kept in case the migration is abandoned. */
  let pausedState: Uint8Array | null = null;
  /** A park asked for and not yet made: the engine's guestPaused comes this long after it (null: none pending). */
  let parkPending: { replyUs: number } | null = null;
  const park = (now: number, replyUs: number) => {
    const cpuState = guest.pause(now);
    pausedState = cpuState;
    w.expected.take();
    w.queue.push(now + replyUs, { type: "guestPaused", cpuState });
  };
  return {
    park: () => {
      if (parkPending === null) return;
      const { replyUs } = parkPending;
      parkPending = null;
      park(w.clock(), replyUs);
    },
    canSend: (channel) => w.link.hasRoom(0, channel, w.clock()),
    send: (channel, msg) => send(w, 0, channel, msg),
    setTimer: (at) => w.timers.set(0, at, w.clock()),
    pauseGuest: () => {
      const now = w.clock();
      const legs = pauseLegsUs(w.host);
      if (legs.parkUs === 0) return park(now, legs.pausedUs);
      // The real vCPUs run until they see the PAUSE (and dirty pages meanwhile): the guest parks later.
      parkPending = { replyUs: legs.pausedUs - legs.parkUs };
      w.queue.push(now + legs.parkUs, { type: "sourceParks" });
    },
    resumeGuest: () => {
      // Taken back before it parked: it never stops.
      parkPending = null;
      if (!guest.running && pausedState !== null) guest.resume(w.clock(), pausedState);
      w.expected.drop();
      guest.setThrottle(0);
    },
    throttleGuest: (ratio) => guest.setThrottle(withStreaming(w.host, ratio, duty(w))),
    standbyRoom: () => w.standby.hasRoom,
    standbyWrite: (op) => w.standby.write(op, w.clock()),
    releasePages: (count) => w.releasePages(count),
    finished: (end) => w.finish(end.outcome, end.reason),
  };
}

/** The destination's effects, and its guest's start that a host's `first_step_us` puts after the engine's RESUME (host-switchover.ts). */
export function destinationEffects(w: SimWorld): DestinationEffects<number> & { start(cpuState: Uint8Array): void } {
  const guest = w.dstGuest;
  const start = (cpuState: Uint8Array) => {
    guest.resume(w.clock(), cpuState);
    // The host's cores go to the page stream from here (src/sim/host-cpu.ts); a vCPU woken from a fault waits for one.
    if (w.host !== null) guest.setThrottle(withStreaming(w.host, 0, duty(w)));
    guest.wakeUs = faultWakeUs(w.host);
    // A simulated guest starts at once; the engine queues the action's answer and the loop picks it up.
    w.dest.handle({ kind: "guestResumed" }, w.clock());
  };
  return {
    start,
    canSend: (channel) => w.link.hasRoom(1, channel, w.clock()),
    send: (channel, msg) => send(w, 1, channel, msg),
    setTimer: (at) => w.timers.set(1, at, w.clock()),
    installPages: (batch) => guest.installBatch(batch.pages, batch.data, w.clock()),
    wake: (page) => guest.wakePage(page, w.clock()),
    dropPages: (pages) => guest.drop(pages),
    resumeGuest: (cpuState) => {
      const after = firstStepUs(w.host);
      if (after === 0) return start(cpuState);
      w.queue.push(w.clock() + after, { type: "destinationStarts", cpuState });
    },
    stopFaultHandling: () => undefined,
    standbyRecover: (missing) => w.standby.read(missing, w.clock()),
    // With the source alive the source's end is the run's; once it died, the destination's is.
    finished: (end) => {
      if (w.standby.diedAt !== null) w.finish(end.outcome, end.reason);
    },
  };
}

/**
 * The real source's fault lane (native/src/lane_server.cc) where the host
 * profile has one (`fault_lane_us`): a page request on the urgent channel is
 * answered from the source guest's memory by the lane's own thread, without
 * the source's engine, also when that page's copy is already on its way in a
 * background message (the engine would leave the request to that copy; the
 * destination keeps whichever copy comes first). The engine then books what
 * the lane served, as the real agent tells it. Returns the engine's input for
 * that booking once the reply is on the link, or null where no lane answers
 * (no lane in the profile, not a page request, a page out of the layout,
 * which the engine judges).
 */
export function laneServe(w: SimWorld, channel: Channel, msg: Msg, pageCount: number): { kind: "served"; pages: Uint32Array; zero: Uint8Array; bytes: number } | null {
  if (w.host?.fault_lane_us === undefined || channel !== "urgent" || msg.type !== "pageRequest" || !(msg.page < pageCount)) return null;
  const data = w.srcGuest.readPage(msg.page);
  // One-slot arrays filled in place, not Uint32Array.of (its iterator path, once per demand fault: page-sender.ts).
  const pages = new Uint32Array(1);
  pages[0] = msg.page;
  const zero = new Uint8Array(1);
  zero[0] = data === null ? 1 : 0;
  const reply: Msg = { type: "pages", pages, data: [data] };
  send(w, 0, "urgent", reply);
  return { kind: "served", pages, zero, bytes: encodedSize(reply, w.pageSize) };
}

function send(w: SimWorld, dir: Direction, channel: Channel, msg: Msg): void {
  const bytes = encodedSize(msg, w.pageSize);
  const h = w.host;
  if (h === null) return w.link.send(dir, channel, msg, bytes, w.clock());
  // Once the destination's guest runs its pages install through userfaultfd, which costs the stream more (host-cpu.ts).
  const cost = messageCostUs(h, msg, w.dstGuest.running, channel === "urgent", w.link.spec.latencyUs, w.zeroHoles);
  w.link.send(dir, channel, msg, bytes, w.clock(), occupancyBytes(bytes, cost, w.link.usPerWireByte), cost.recvUs + cost.extraUs);
}
