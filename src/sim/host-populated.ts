/**
 * A destination whose memory was populated before the migration (`ppsim
 * real --prealloc`, src/real/dest-prealloc.ts): its receivers store pages
 * through a mapping of memory that exists already and map them with
 * UFFDIO_CONTINUE, and a zero page is mapped unwritten — not the fresh
 * memory's allocation, zeroing and first touch, nor pwritev's inode lock.
 * The install and stream figures for that are keys of their own, measured by `ppsim
 * calibrate` the same way as the stream keys (host-cpu.ts) but into
 * populated memory (calibrate-bulk.ts `populated`). A simulation told the
 * destination is populated (SimConfig `destPopulated`, `--prealloc`) streams
 * at those figures where the profile has them; the per-install-call run keys
 * (host-runs.ts), measured on fresh memory's installs, are not used then, nor
 * are zero holes (there are none: every zero page is mapped, by the CONTINUE of
 * its stretch, charged the populated zero-page figures).
 */
import type { HostProfile } from "./host.js";
import { optionalCostError } from "./host-keys.js";

export interface HostPopulated {
  /** Installing a page with data into populated memory (stored through its mapping, then CONTINUE), ns. */
  install_ns_per_page_populated?: number;
  /** Installing a zero page there (the CONTINUE alone), ns. */
  install_ns_per_zero_page_populated?: number;
  /** The stream's wall time per page with data into populated memory before the guest runs, ns. */
  stream_ns_per_page_populated?: number;
  /** The same for a zero page, ns. */
  stream_ns_per_zero_page_populated?: number;
  /** Per page with data once the destination's guest runs (claimed, stored, CONTINUE), ns. */
  stream_ns_per_page_running_populated?: number;
  /** Per zero page once it runs (claimed, mapped by CONTINUE), ns. */
  stream_ns_per_zero_page_running_populated?: number;
}

export const POPULATED_KEYS = [
  "install_ns_per_page_populated",
  "install_ns_per_zero_page_populated",
  "stream_ns_per_page_populated",
  "stream_ns_per_zero_page_populated",
  "stream_ns_per_page_running_populated",
  "stream_ns_per_zero_page_running_populated",
] as const;

/** What is wrong with a profile's populated keys (each optional, a cost in [0, max]), or null. */
export function populatedKeyError(o: Record<string, unknown>, max: number): string | null {
  return optionalCostError(o, POPULATED_KEYS, max);
}

/**
 * The profile as a destination with populated memory costs: the stream keys
 * replaced by their populated figures, the run keys dropped — where the
 * profile has populated figures; else the profile as it is (nothing measured
 * to say otherwise).
 */
export function populatedHost(h: HostProfile): HostProfile {
  if (h.stream_ns_per_page_populated === undefined && h.install_ns_per_page_populated === undefined) return h;
  const p: HostProfile = {
    ...h,
    install_ns_per_page: h.install_ns_per_page_populated ?? h.install_ns_per_page,
    install_ns_per_zero_page: h.install_ns_per_zero_page_populated ?? h.install_ns_per_zero_page,
  };
  // The stream's figures only where the profile models the stream (its CPU keys, host-cpu.ts) and
  // has them measured into populated memory; the run keys (fresh memory's calls) go with them.
  if (h.stream_ns_per_page !== undefined && h.stream_ns_per_page_populated !== undefined) {
    p.stream_ns_per_page = h.stream_ns_per_page_populated;
    p.stream_ns_per_zero_page = h.stream_ns_per_zero_page_populated ?? h.stream_ns_per_zero_page;
    p.stream_ns_per_page_running = h.stream_ns_per_page_running_populated ?? h.stream_ns_per_page_running;
    p.stream_ns_per_zero_page_running = h.stream_ns_per_zero_page_running_populated ?? h.stream_ns_per_zero_page_running;
    delete p.stream_ns_per_run;
    delete p.stream_ns_per_zero_run;
    delete p.stream_ns_per_run_running;
    delete p.stream_ns_per_zero_run_running;
  }
  return p;
}
