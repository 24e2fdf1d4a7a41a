/** Migration policy: everything a run can choose, with the defaults both drivers use. */
import type { Mode } from "./messages.js";
import { MAX_PAGES_PER_MESSAGE } from "./codec.js";

export type BackgroundOrderName = "linear" | "neighbourhood";

export interface MigrationOptions {
  mode: Mode;
  /** Pre-copy switches over once the remaining dirty set can be sent within this time. */
  downtimeLimitMs: number;
  /**
   * The share of downtimeLimitMs the switchover test keeps back for what its
   * estimate (the dirty pages' bytes over the bandwidth measured so far)
   * misses — scattered stop-and-copy pages move more slowly than a round's
   * consecutive ones, the guest writes a few more before the pause. Pre-copy
   * switches once the estimate is at most (1 − downtimeMargin) ×
   * downtimeLimitMs; why 0.1: docs/real-benchmarks.md, "Pre-copy's downtime
   * and its limit".
   */
  downtimeMargin: number;
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
  /**
   * Pages per bulk message (fewer when batchBytes says so). 256 (1 MiB of 4 KiB
   * pages, the protocol's most): the real back end's cost is per message as much
   * as per page — the engine's pull, the frame's header and JS objects, the
   * receiver's notices, one install call per run — and 1 MiB messages took a
   * third less CPU than 16-page ones for the same migration with no slower
   * faults (docs/real-benchmarks.md, "Bulk messages of 256 pages"). A demand
   * reply never waits behind one: it has its own lane, and the simulated link
   * lets urgent packets cut in at a packet's boundary.
   */
  batchPages: number;
  /**
   * Page bytes a bulk message carries at most, whole pages and at least one:
   * min(batchPages, batchBytes / pageSize) pages (batchPagesFor). It leaves
   * 4 KiB pages at batchPages and keeps a huge page alone: 16 × 2 MiB made
   * 32 MiB messages, each one long synchronous read, encode and install on
   * either loop that a demand fault waited behind (docs/huge-pages.md, last section).
   */
  batchBytes: number;
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
  downtimeMargin: 0.1,
  maxRounds: 30,
  autoConverge: true,
  throttleInitial: 0.2,
  throttleStep: 0.1,
  throttleMax: 0.99,
  hybridRounds: 2,
  bandwidthCap: 0,
  backgroundOrder: "neighbourhood",
  prefetchPages: 32,
  laneWindowBytes: 64 * 1024,
  batchPages: 256,
  batchBytes: 2 * 1024 * 1024,
  urgentChannel: true,
  setupTimeoutMs: 15_000,
  reconnectTimeoutMs: 60_000,
};

/** Pages per bulk message at this page size: batchPages, bounded by batchBytes, never below one page. */
export function batchPagesFor(o: Pick<MigrationOptions, "batchPages" | "batchBytes">, pageSize: number): number {
  return Math.max(1, Math.min(o.batchPages, Math.floor(o.batchBytes / pageSize)));
}

/** A bad migration option: `option` names it (an unknown key, a wrong type, a value out of range). */
export class OptionError extends Error {
  override name = "OptionError";
  constructor(
    readonly option: string,
    message: string,
  ) {
    super(`option ${option} ${message}`);
  }
}

type Check = (v: unknown) => string | null;

const MODE_NAMES = ["precopy", "postcopy", "hybrid"];
const ORDER_NAMES = ["linear", "neighbourhood"];
const show = (v: unknown) => (typeof v === "string" ? JSON.stringify(v) : String(v));
const positive: Check = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? null : `must be a positive number, got ${show(v)}`);
const intFrom =
  (min: number): Check =>
  (v) =>
    typeof v === "number" && Number.isSafeInteger(v) && v >= min ? null : `must be an integer ≥ ${min}, got ${show(v)}`;
const ratio: Check = (v) => (typeof v === "number" && v > 0 && v < 1 ? null : `must be in (0, 1), got ${show(v)}`);
const oneOf =
  (names: string[]): Check =>
  (v) =>
    typeof v === "string" && names.includes(v) ? null : `must be ${names.slice(0, -1).join(", ")} or ${names[names.length - 1]}, got ${show(v)}`;
const boolean: Check = (v) => (typeof v === "boolean" ? null : `must be true or false, got ${show(v)}`);

/** One check per option: the keys of this table are the only option names. */
const CHECKS: Record<keyof MigrationOptions, Check> = {
  mode: oneOf(MODE_NAMES),
  downtimeLimitMs: positive,
  downtimeMargin: (v) => (typeof v === "number" && v >= 0 && v < 1 ? null : `must be in [0, 1), got ${show(v)}`),
  maxRounds: intFrom(1),
  autoConverge: boolean,
  throttleInitial: ratio,
  throttleStep: ratio,
  throttleMax: ratio,
  hybridRounds: intFrom(1),
  bandwidthCap: (v) => (typeof v === "number" && Number.isFinite(v) && v >= 0 ? null : `must be ≥ 0 bytes/s (0 = unlimited), got ${show(v)}`),
  backgroundOrder: oneOf(ORDER_NAMES),
  prefetchPages: intFrom(0),
  laneWindowBytes: positive,
  // The codec refuses bigger pages messages (a peer's bound, issue 15): the engine must not make them.
  batchPages: (v) => intFrom(1)(v) ?? ((v as number) <= MAX_PAGES_PER_MESSAGE ? null : `must be at most ${MAX_PAGES_PER_MESSAGE} (a pages message's limit), got ${show(v)}`),
  batchBytes: intFrom(1),
  urgentChannel: boolean,
  setupTimeoutMs: positive,
  reconnectTimeoutMs: positive,
};

/** The closest option name, for "did you mean". */
function nearest(key: string): string | null {
  const lower = key.toLowerCase();
  let best: string | null = null;
  let bestScore = Infinity;
  const stem = lower.slice(0, Math.max(4, lower.length - 2));
  for (const name of Object.keys(CHECKS)) {
    // A typo at the end of a name ("prefetchh", "prefetch") counts as near.
    const d = name.toLowerCase().startsWith(stem) ? 1 : editDistance(lower, name.toLowerCase());
    if (d < bestScore) [best, bestScore] = [name, d];
  }
  return bestScore <= Math.max(2, Math.floor(key.length / 3)) ? best : null;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur.push(Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1)));
    prev = cur;
  }
  return prev[b.length];
}

/**
 * Fills in the defaults and checks every option: an unknown key, a value of
 * the wrong type or out of range throws an OptionError naming the option.
 */
export function resolveOptions(partial: Partial<MigrationOptions> = {}): MigrationOptions {
  if (typeof partial !== "object" || partial === null) throw new OptionError("(options)", `must be an object, got ${String(partial)}`);
  for (const key of Object.keys(partial)) {
    if (!Object.hasOwn(CHECKS, key)) {
      const guess = nearest(key);
      throw new OptionError(key, `is not an option${guess ? ` (did you mean ${guess}?)` : ""}; the options are ${Object.keys(CHECKS).join(", ")}`);
    }
  }
  const defined = Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined));
  const o: MigrationOptions = { ...DEFAULT_OPTIONS, ...defined };
  for (const [key, check] of Object.entries(CHECKS)) {
    const problem = check(o[key as keyof MigrationOptions]);
    if (problem !== null) throw new OptionError(key, problem);
  }
  if (o.throttleInitial > o.throttleMax) throw new OptionError("throttleInitial", `must be ≤ throttleMax (${o.throttleMax}), got ${o.throttleInitial}`);
  return o;
}
