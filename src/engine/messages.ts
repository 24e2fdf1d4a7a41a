/**
 * Protocol messages exchanged by the source and destination engines.
 *
 * Every message has an explicit numeric tag (see `MessageTag`), which is what
 * the binary codec writes on the wire. Page payloads are generic: the real
 * back end carries the page bytes (`Uint8Array`), the simulator carries a page
 * version number. A zero page carries no payload at all (`data === null`).
 */

export const PROTOCOL_VERSION = 1;
/** The oldest peer version this build still speaks. */
export const MIN_PROTOCOL_VERSION = 1;

/** Capability bits advertised in the handshake. */
export const Capability = {
  /** Destination can take pages while its guest runs (post-copy). */
  Postcopy: 1 << 0,
  /** Requests and their replies travel on a channel of their own. */
  UrgentChannel: 1 << 1,
  /** Link failures after switchover are recovered with the received bitmap. */
  Recovery: 1 << 2,
} as const;
export const ALL_CAPABILITIES = Capability.Postcopy | Capability.UrgentChannel | Capability.Recovery;

export type Mode = "precopy" | "postcopy" | "hybrid";
export const MODES: readonly Mode[] = ["precopy", "postcopy", "hybrid"];

/** Two logical channels; a driver may map both onto one queue to show what sharing costs. */
export type Channel = "urgent" | "bulk";

export const MessageTag = {
  Hello: 1,
  HelloAck: 2,
  Pages: 3,
  PageRequest: 4,
  Switchover: 5,
  Resumed: 6,
  Complete: 7,
  Recover: 8,
  Cancel: 9,
  Error: 10,
  Report: 11,
} as const;

/**
 * Pages as parallel arrays, one slot per page (no object per page: a 1 TiB
 * guest moves 268 M of them through the engine and the simulated link).
 * `data[i]` is the content of page `pages[i]`; null: a zero page, sent as a
 * flag without payload. Both arrays have the same length.
 */
export interface PageBatch<P> {
  pages: Uint32Array;
  data: (P | null)[];
  /**
   * Set by a driver whose receiver already wrote these pages into guest
   * memory (the real native data plane): the engine books them as usual and
   * its installPages action passes the flag on, so the effect skips them.
   */
  preinstalled?: true;
  /** With preinstalled: when those pages were installed (the engine's clock), for the fault latency of the faults they answer. */
  installedAt?: number;
  /**
   * With preinstalled: the wire bytes of the frames this batch stands for,
   * when a receiver merged several frames' pages into one message (its own
   * encoded size has one header, not one per frame); absent: its encoded size.
   */
  wireBytes?: number;
}

/** source → destination: first message; proposes version, capabilities and memory layout. */
export interface HelloMsg {
  type: "hello";
  version: number;
  capabilities: number;
  pageSize: number;
  pageCount: number;
  mode: Mode;
}
/** destination → source: the version and capabilities both sides will use. */
export interface HelloAckMsg {
  type: "helloAck";
  version: number;
  capabilities: number;
}
/** source → destination: one or more pages (bulk push, pre-copy, or a demand reply on the urgent channel). */
export interface PagesMsg<P> extends PageBatch<P> {
  type: "pages";
}
/** destination → source (urgent): a vCPU waits for this page. */
export interface PageRequestMsg {
  type: "pageRequest";
  page: number;
}
/**
 * source → destination: the source guest is paused for good. `stale` lists
 * pages the destination holds that were dirtied since they were sent: it drops
 * them. `cpuState` is the guest's serialised vCPU state. After this message a
 * post-copy destination resumes at once; a pre-copy one has every page already.
 */
export interface SwitchoverMsg {
  type: "switchover";
  stale: Uint32Array;
  cpuState: Uint8Array;
}
/**
 * destination → source: the destination guest runs. Until it arrives (or a
 * recover saying so) the source may still resume its own guest: this is the
 * point of no return.
 */
export interface ResumedMsg {
  type: "resumed";
}
/** destination → source: every page is present; the source may release the guest. */
export interface CompleteMsg {
  type: "complete";
}
/**
 * destination → source after a reconnection: what the destination holds, so
 * the source resends exactly the rest. `resumed` says whether it had already
 * taken the switchover (and so dropped its stale pages).
 */
export interface RecoverMsg {
  type: "recover";
  resumed: boolean;
  /**
   * Bytes of whole messages the destination has taken from the bulk channel
   * over the whole migration. Bulk is FIFO, so this tells the source exactly
   * which of its bulk sends arrived: a page whose newest copy was sent at or
   * past this offset was lost, even if an older copy was received.
   */
  bulkBytes: number;
  received: Uint8Array;
}
/** source → destination: pre-copy abandoned; the source guest keeps running. */
export interface CancelMsg {
  type: "cancel";
  reason: string;
}
/** either way: a fatal protocol error, with a code and a readable reason. */
export interface ErrorMsg {
  type: "error";
  code: number;
  reason: string;
}

/**
 * destination → source, after completion: the destination agent's own
 * figures and verification (JSON). The engines ignore it; agents use it to
 * put one report together.
 */
export interface ReportMsg {
  type: "report";
  json: string;
}

export const ErrorCode = {
  VersionMismatch: 1,
  BadLayout: 2,
  Protocol: 3,
  Cancelled: 4,
  /** The destination could not start its guest: it never ran, and the source may resume its own. */
  ResumeFailed: 5,
} as const;

export type Message<P> =
  | HelloMsg
  | HelloAckMsg
  | PagesMsg<P>
  | PageRequestMsg
  | SwitchoverMsg
  | ResumedMsg
  | CompleteMsg
  | RecoverMsg
  | CancelMsg
  | ErrorMsg
  | ReportMsg;
