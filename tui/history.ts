/**
 * What the view remembers between snapshots: recent cumulative counters (to
 * derive rates per second of the driver's clock — virtual seconds for the
 * simulator), the guest-progress series, and the phases seen. Pure: observe()
 * returns a new History.
 */
import type { Phase, Snapshot } from "../src/engine/report.js";

export interface Sample {
  t: number;
  urgent: number;
  bulk: number;
  faults: number;
}

export interface Rates {
  /** Bytes per second of the driver's clock. */
  urgent: number;
  bulk: number;
  faultsPerSec: number;
}

export interface History {
  /** Recent samples (the rate window plus one before it). */
  samples: Sample[];
  rates: Rates | null;
  /** Guest progress over the whole run (decimated when long). */
  progress: { t: number; v: number }[];
  seen: Phase[];
}

/** Rates are averaged over this much of the driver's clock (or the last step, if longer). */
export const RATE_WINDOW_MS = 1000;
const MAX_PROGRESS_POINTS = 512;

export function emptyHistory(): History {
  return { samples: [], rates: null, progress: [], seen: [] };
}

export function observe(h: History, s: Snapshot, windowMs = RATE_WINDOW_MS): History {
  const last = h.samples[h.samples.length - 1];
  // The clock went back: a new run; start over.
  if (last && s.elapsedMs < last.t) return observe(emptyHistory(), s, windowMs);
  const seen = h.seen.includes(s.phase) ? h.seen : [...h.seen, s.phase];
  // The clock stood still (paused, or a poll between ticks): nothing new to rate.
  if (last && s.elapsedMs === last.t) return seen === h.seen ? h : { ...h, seen };

  const now: Sample = { t: s.elapsedMs, urgent: s.channelBytes.urgent, bulk: s.channelBytes.bulk, faults: s.demandFaults };
  let rates = h.rates;
  if (last) {
    // Oldest sample inside the window, else the latest one before it.
    const inWindow = h.samples.find((x) => x.t >= now.t - windowMs);
    const base = inWindow ?? last;
    const dt = (now.t - base.t) / 1000;
    rates = {
      urgent: (now.urgent - base.urgent) / dt,
      bulk: (now.bulk - base.bulk) / dt,
      faultsPerSec: (now.faults - base.faults) / dt,
    };
  }
  const all = [...h.samples, now];
  let firstKept = all.findIndex((x) => x.t >= now.t - windowMs);
  if (firstKept > 0) firstKept--; // keep one sample before the window
  const samples = all.slice(Math.max(0, firstKept));

  let progress = [...h.progress, { t: s.elapsedMs, v: s.guestProgress }];
  if (progress.length > MAX_PROGRESS_POINTS) progress = progress.filter((_, i) => i % 2 === 0 || i === progress.length - 1);
  return { samples, rates, progress, seen };
}

/** The history of a sequence of snapshots (tests, replays). */
export function historyOf(snaps: readonly Snapshot[]): History {
  return snaps.reduce((h, s) => observe(h, s), emptyHistory());
}
