/**
 * What drivers feed the engines (inputs) and what they pull out of them
 * (actions; messages come from `pollTransmit`). Time is always an argument
 * (`now`, in microseconds of the driver's clock); the engines never read a
 * clock themselves.
 */
import type { Channel, Message, PageBatch } from "./messages.js";

export type Outcome = "completed" | "cancelled" | "failed";

/** Why a migration ended, for drivers and reports (the text says it for people). */
export const EndCause = {
  Completed: "completed",
  /** The operator cancelled (before switchover). */
  Cancelled: "cancelled",
  /** The peer cancelled, or reported an error. */
  PeerCancelled: "peer-cancelled",
  PeerError: "peer-error",
  /** The peer sent something the protocol does not allow, or bytes that do not decode. */
  ProtocolError: "protocol-error",
  /** No common protocol version, or a layout/mode the other side cannot take. */
  Incompatible: "incompatible",
  /** The link broke before switchover (the source guest runs on). */
  LinkLost: "link-lost",
  SetupTimeout: "setup-timeout",
  /** The link stayed down past the reconnect deadline. */
  ReconnectTimeout: "reconnect-timeout",
  /**
   * Past the pause but before the destination guest could run: the source
   * resumed its own guest. Failed, not lost; the reason names the failure.
   */
  ResumedAtSource: "resumed-at-source",
  /** The destination could not start its guest (it never ran). */
  ResumeFailed: "resume-failed",
  /**
   * After the destination guest ran, the destination went away for good and
   * nothing else holds its memory: the VM is lost (the reason says why).
   */
  VmLost: "vm-lost",
} as const;
export type EndCause = (typeof EndCause)[keyof typeof EndCause];

export interface Ending {
  outcome: Outcome;
  cause: EndCause;
  reason: string;
}

// ---------------------------------------------------------------- source side

export type SourceInput<P> =
  | { kind: "message"; msg: Message<P> }
  /** Answer to a `pauseGuest` action: the guest is stopped; here is its vCPU state. */
  | { kind: "guestPaused"; cpuState: Uint8Array }
  | { kind: "linkDown" }
  /** The link is back; the source waits for the destination's `recover`. */
  | { kind: "linkUp" }
  /** The peer's bytes did not decode (the decoder's message). */
  | { kind: "malformed"; reason: string }
  /** The standby copy's operation `seq` (from `pollStandby`) is durable. */
  | { kind: "standbyWritten"; seq: number }
  /**
   * The destination holds these pages, as it said after taking the switchover
   * (their content is final): the standby copy need not hold them to protect
   * the VM. The driver learns it from the destination's progress reports.
   */
  | { kind: "destinationHolds"; pages: Uint32Array }
  /**
   * The driver's fault lane (the real back end's native one) answered demand
   * requests itself, with these pages (zero[i] = 1: as a zero page), `bytes`
   * on the wire: they are booked as sent on the urgent lane, as the engine's
   * own replies are (one already sent is a duplicate the destination drops).
   */
  | { kind: "served"; pages: Uint32Array; zero: Uint8Array; bytes: number };

export type SourceAction =
  | { kind: "pauseGuest" }
  /** Pre-copy was abandoned: the source guest continues (it was never paused, or is resumed). */
  | { kind: "resumeGuest" }
  /** Slow the guest's vCPUs to (1 - ratio) of their speed; 0 lifts the throttle. */
  | { kind: "throttleGuest"; ratio: number }
  /** Post-copy: the destination holds these pages; the source may free its copies. */
  | { kind: "releasePages"; count: number }
  /** The migration has ended (completed, cancelled or failed). */
  | ({ kind: "finished" } & Ending);

/** The answer to an operator's request. */
export type CommandResult = { ok: true } | { ok: false; reason: string };

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

export type DestinationInput<P> =
  /** A message, and the channel it came on (the destination counts bulk bytes for recovery). */
  | { kind: "message"; msg: Message<P>; channel: Channel }
  /** A vCPU touched a page that is not present and is now stalled on it. */
  | {
      kind: "fault";
      page: number;
      vcpu: number;
      /** The driver's fault lane asked the source for it already (a standing rule the driver runs): booked as requested, not sent. */
      requested?: boolean;
      /** When the fault happened (the engine's clock), if earlier than this input: the fault latency counts from it. */
      at?: number;
    }
  /** Answer to `resumeGuest`: the destination guest runs (from here on the source may not resume its own). */
  | { kind: "guestResumed" }
  /** Answer to `resumeGuest`: the guest could not be started, and the driver made sure it does not run. */
  | { kind: "resumeFailed"; reason: string }
  | { kind: "linkDown" }
  /** The link is back: the destination sends its received bitmap. */
  | { kind: "linkUp" }
  | { kind: "malformed"; reason: string }
  /** Pages read from the standby copy and verified (answers `standbyRecover`, in as many parts as the driver likes). */
  | { kind: "standbyPages"; batch: PageBatch<P> }
  /** The standby read is over: what is still missing was not in the copy, current and intact. */
  | { kind: "standbyEnd" };

export type DestinationAction<P> =
  /**
   * Put these pages into guest memory and wake any vCPU stalled on them. While
   * the guest runs this must be atomic (UFFDIO_COPY / ZEROPAGE, or write then CONTINUE).
   */
  | { kind: "installPages"; batch: PageBatch<P> }
  /** A fault arrived for a page that is already present (a lost race): just wake its waiters. */
  | { kind: "wake"; page: number }
  /** Make these pages missing again (stale copies dropped at switchover). */
  | { kind: "dropPages"; pages: Uint32Array }
  /** Start the destination guest from this vCPU state; answered by `guestResumed` or `resumeFailed`. */
  | { kind: "resumeGuest"; cpuState: Uint8Array }
  /**
   * The source is gone for good: read these pages from the standby copy,
   * verify each against its checksum and the switchover mark, and feed the
   * good ones back (`standbyPages`), then `standbyEnd`.
   */
  | { kind: "standbyRecover"; missing: Uint32Array }
  /** Every page is present: stop intercepting faults. */
  | { kind: "stopFaultHandling" }
  | ({ kind: "finished" } & Ending);
