/**
 * What drivers feed the engines (events) and what the engines ask of their
 * drivers (actions). Time is always an argument (`now`, in microseconds of the
 * driver's clock); the engines never read a clock themselves.
 */
import type { Channel, Message } from "./messages.js";

// ---------------------------------------------------------------- source side

export type SourceEvent<P> =
  /** Begin: send the handshake. */
  | { kind: "start" }
  | { kind: "message"; msg: Message<P> }
  /** The driver has put `bytes` of this channel's queued messages on the wire. */
  | { kind: "transmitted"; channel: Channel; bytes: number }
  /** Answer to a `pauseGuest` action: the guest is stopped; here is its vCPU state. */
  | { kind: "guestPaused"; cpuState: Uint8Array }
  | { kind: "linkDown" }
  /** The link is back; the source waits for the destination's `recover`. */
  | { kind: "linkUp" }
  /** The timer set by the last `setTimer` action has fired. */
  | { kind: "timer" }
  /** The operator asks to cancel (only honoured before switchover). */
  | { kind: "cancel"; reason: string };

export type SourceAction<P> =
  | { kind: "send"; channel: Channel; msg: Message<P> }
  | { kind: "pauseGuest" }
  /** Pre-copy was abandoned: the source guest continues (it was never paused, or is resumed). */
  | { kind: "resumeGuest" }
  /** Slow the guest's vCPUs to (1 - ratio) of their speed; 0 lifts the throttle. */
  | { kind: "throttleGuest"; ratio: number }
  /** Fire a `timer` event at this time (replaces any earlier timer). */
  | { kind: "setTimer"; at: number }
  /** Post-copy: the destination holds these pages; the source may free its copies. */
  | { kind: "releasePages"; count: number }
  /** The migration has ended (completed, cancelled or failed). */
  | { kind: "finished"; outcome: Outcome; reason: string }
  /** A cancel request that cannot be honoured, with why. */
  | { kind: "refused"; reason: string };

/**
 * Synchronous access to the source guest's memory. Reading memory is not I/O
 * in the sense the engine avoids: it is how a VMM reads its own RAM.
 */
export interface SourceGuestPort<P> {
  /** The page's current content, or null when it is all zeros. */
  readPage(page: number): P | null;
  /**
   * Pages written since the previous call (and re-arm tracking). The first
   * call starts tracking. Each page at most once, in any order.
   */
  collectDirty(): Uint32Array;
}

// ----------------------------------------------------------- destination side

export type DestinationEvent<P> =
  /** A message, and the channel it came on (the destination counts bulk bytes for recovery). */
  | { kind: "message"; msg: Message<P>; channel: Channel }
  | { kind: "transmitted"; channel: Channel; bytes: number }
  /** A vCPU touched a page that is not present and is now stalled on it. */
  | { kind: "fault"; page: number; vcpu: number }
  | { kind: "linkDown" }
  /** The link is back: the destination sends its received bitmap. */
  | { kind: "linkUp" };

export type DestinationAction<P> =
  | { kind: "send"; channel: Channel; msg: Message<P> }
  /**
   * Put this page into guest memory and wake any vCPU stalled on it. While the
   * guest runs this must be atomic (UFFDIO_COPY / ZEROPAGE, or write then CONTINUE).
   */
  | { kind: "installPage"; page: number; data: P | null }
  /** A fault arrived for a page that is already present (a lost race): just wake its waiters. */
  | { kind: "wake"; page: number }
  /** Make these pages missing again (stale copies dropped at switchover). */
  | { kind: "dropPages"; pages: Uint32Array }
  /** Start the destination guest from this vCPU state. */
  | { kind: "resumeGuest"; cpuState: Uint8Array }
  /** Every page is present: stop intercepting faults. */
  | { kind: "stopFaultHandling" }
  | { kind: "finished"; outcome: Outcome; reason: string };

export type Outcome = "completed" | "cancelled" | "failed";
