/**
 * The one driving loop both back ends share. A driver implements the effects
 * (what "send on a lane", "pause the guest", "install pages" mean for it) and
 * calls `driveSource` / `driveDestination` after every input it fed the
 * engine and whenever a lane gains room; the loop drains the engine's actions
 * and pulls messages while the lanes have room, in the order the engine's
 * contract names, then hands the next deadline to the driver's timer.
 */
import type { Destination } from "./destination.js";
import type { DestinationAction, Ending, SourceAction } from "./events.js";
import type { Channel, Message, PageBatch } from "./messages.js";
import type { Source } from "./source.js";
import type { StandbyOp } from "./standby.js";

export const CHANNELS: readonly Channel[] = ["urgent", "bulk"];

interface LaneEffects<P> {
  /** Whether this lane can take another message now (its window has room and the link is up). */
  canSend(channel: Channel): boolean;
  send(channel: Channel, msg: Message<P>): void;
  /** The engine's next deadline (µs, driver clock), or null for none; replaces any earlier one. */
  setTimer(at: number | null): void;
  finished(end: Ending): void;
}

export interface SourceEffects<P> extends LaneEffects<P> {
  /** With a standby copy: whether the storage queue takes another operation now. */
  standbyRoom?(): boolean;
  standbyWrite?(op: StandbyOp): void;
  pauseGuest(): void;
  resumeGuest(): void;
  throttleGuest(ratio: number): void;
  releasePages(count: number): void;
}

export interface DestinationEffects<P> extends LaneEffects<P> {
  installPages(batch: PageBatch<P>): void;
  wake(page: number): void;
  dropPages(pages: Uint32Array): void;
  resumeGuest(cpuState: Uint8Array): void;
  stopFaultHandling(): void;
  /** With a standby copy (issue 16): read these pages from it. */
  standbyRecover?(missing: Uint32Array): void;
}

function applySource<P>(a: SourceAction, fx: SourceEffects<P>): void {
  switch (a.kind) {
    case "pauseGuest":
      return fx.pauseGuest();
    case "resumeGuest":
      return fx.resumeGuest();
    case "throttleGuest":
      return fx.throttleGuest(a.ratio);
    case "releasePages":
      return fx.releasePages(a.count);
    case "finished":
      return fx.finished({ outcome: a.outcome, cause: a.cause, reason: a.reason });
  }
}

function applyDestination<P>(a: DestinationAction<P>, fx: DestinationEffects<P>): void {
  switch (a.kind) {
    case "installPages":
      return fx.installPages(a.batch);
    case "wake":
      return fx.wake(a.page);
    case "dropPages":
      return fx.dropPages(a.pages);
    case "resumeGuest":
      return fx.resumeGuest(a.cpuState);
    case "stopFaultHandling":
      return fx.stopFaultHandling();
    case "standbyRecover":
      if (fx.standbyRecover === undefined) throw new Error("the destination engine asked for a standby read, and this driver has no standby copy");
      return fx.standbyRecover(a.missing);
    case "finished":
      return fx.finished({ outcome: a.outcome, cause: a.cause, reason: a.reason });
  }
}

interface Engine<A, P> {
  pollAction(): A | null;
  pollTransmit(channel: Channel, now: number): Message<P> | null;
  pollTimeout(): number | null;
}

/** Applies every pending action; whether there was any. */
function applyAll<A, P, F>(engine: Engine<A, P>, fx: F, apply: (a: A, fx: F) => void): boolean {
  let any = false;
  for (let a = engine.pollAction(); a !== null; a = engine.pollAction()) {
    apply(a, fx);
    any = true;
  }
  return any;
}

// Called after every simulated event: written to allocate nothing per call.
function drive<A, P, F extends LaneEffects<P>>(engine: Engine<A, P>, fx: F, apply: (a: A, fx: F) => void, now: number): void {
  // A lane is pulled until it is full or the engine has nothing for it.
  // Pulling can raise actions (a round's end pauses the guest), and only an
  // action can free more messages: go round again only after one.
  applyAll(engine, fx, apply);
  do {
    for (let i = 0; i < CHANNELS.length; i++) {
      const channel = CHANNELS[i];
      while (fx.canSend(channel)) {
        const msg = engine.pollTransmit(channel, now);
        if (msg === null) break;
        fx.send(channel, msg);
      }
    }
  } while (applyAll(engine, fx, apply));
  fx.setTimer(engine.pollTimeout());
}

export function driveSource<P>(engine: Source<P>, fx: SourceEffects<P>, now: number): void {
  drive(engine, fx, applySource, now);
  if (fx.standbyWrite === undefined || fx.standbyRoom === undefined) return;
  while (fx.standbyRoom()) {
    const op = engine.pollStandby();
    if (op === null) break;
    fx.standbyWrite(op);
  }
}

export function driveDestination<P>(engine: Destination<P>, fx: DestinationEffects<P>, now: number): void {
  drive(engine, fx, applyDestination, now);
}
