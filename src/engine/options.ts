/** Migration policy: everything a run can choose, with the defaults both drivers use. */
import type { Mode } from "./messages.js";

export type BackgroundOrderName = "linear" | "neighbourhood";

export interface MigrationOptions {
  mode: Mode;
  /** Pre-copy switches over once the remaining dirty set can be sent within this time. */
  downtimeLimitMs: number;
  /** Pre-copy: rounds (the first full pass included) before stop-and-copy regardless. */
  maxRounds: number;
  /** Throttle the guest when pre-copy rounds stop shrinking. */
  autoConverge: boolean;
  throttleInitial: number;
  throttleStep: number;
  throttleMax: number;
  /** Hybrid: pre-copy rounds (the full pass included) before switching to post-copy. */
  hybridRounds: number;
  /** Cap on page traffic in bytes per second; 0 = unlimited. */
  bandwidthCap: number;
  /** Post-copy background push order. */
  backgroundOrder: BackgroundOrderName;
  /** Pages pushed after each fault, around it (neighbourhood order). */
  prefetchPages: number;
  /**
   * The one send window: bytes a lane (a link direction's channel) may hold
   * that have left the engine and not yet the wire — the simulated link's
   * queue, the real socket's kernel send buffer. The engine chooses each
   * message only when its lane has room, so a page request waits behind at
   * most this much, and a fault on a page already in the window waits for
   * that copy.
   */
  laneWindowBytes: number;
  /** Pages per bulk message. */
  batchPages: number;
  /** Demand requests and replies on their own channel (true) or behind bulk pages (false). */
  urgentChannel: boolean;
  /** The source gives up a handshake the destination does not answer within this long. */
  setupTimeoutMs: number;
  /** After switchover, how long either side waits for a broken link to come back before giving up. */
  reconnectTimeoutMs: number;
}

export const DEFAULT_OPTIONS: MigrationOptions = {
  mode: "precopy",
  downtimeLimitMs: 300,
  maxRounds: 30,
  autoConverge: true,
  throttleInitial: 0.2,
  throttleStep: 0.1,
  throttleMax: 0.99,
  hybridRounds: 2,
  bandwidthCap: 0,
  backgroundOrder: "neighbourhood",
  prefetchPages: 32,
  laneWindowBytes: 256 * 1024,
  batchPages: 16,
  urgentChannel: true,
  setupTimeoutMs: 15_000,
  reconnectTimeoutMs: 60_000,
};

/** Checks option values; throws an Error naming the bad one. */
export function resolveOptions(partial: Partial<MigrationOptions> = {}): MigrationOptions {
  const o: MigrationOptions = { ...DEFAULT_OPTIONS, ...partial };
  const positive = (name: keyof MigrationOptions, v: number) => {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`option ${name} must be a positive number, got ${v}`);
  };
  if (!["precopy", "postcopy", "hybrid"].includes(o.mode)) throw new Error(`option mode must be precopy, postcopy or hybrid, got ${o.mode}`);
  if (!["linear", "neighbourhood"].includes(o.backgroundOrder)) {
    throw new Error(`option backgroundOrder must be linear or neighbourhood, got ${o.backgroundOrder}`);
  }
  positive("downtimeLimitMs", o.downtimeLimitMs);
  positive("laneWindowBytes", o.laneWindowBytes);
  positive("setupTimeoutMs", o.setupTimeoutMs);
  positive("reconnectTimeoutMs", o.reconnectTimeoutMs);
  for (const k of ["maxRounds", "hybridRounds", "batchPages"] as const) {
    if (!Number.isInteger(o[k]) || o[k] < 1) throw new Error(`option ${k} must be an integer ≥ 1, got ${o[k]}`);
  }
  if (!Number.isInteger(o.prefetchPages) || o.prefetchPages < 0) throw new Error(`option prefetchPages must be an integer ≥ 0, got ${o.prefetchPages}`);
  if (!(o.bandwidthCap >= 0)) throw new Error(`option bandwidthCap must be ≥ 0 bytes/s, got ${o.bandwidthCap}`);
  for (const k of ["throttleInitial", "throttleStep", "throttleMax"] as const) {
    if (!(o[k] > 0 && o[k] < 1)) throw new Error(`option ${k} must be in (0, 1), got ${o[k]}`);
  }
  return o;
}
