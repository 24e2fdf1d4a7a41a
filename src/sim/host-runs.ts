/**
 * What a pages message costs per install call, beside its cost per page
 * (issue 10 part 4): the real destination's native receiver installs a
 * pages frame one run at a time — a run is a stretch of the frame's entries
 * whose page numbers follow each other (native/src/page_install.cc,
 * PageInstaller::Install) — with one system call per run: before its guest
 * runs, one pwritev of the run (its zero pages written as zeros); once it
 * runs, one UFFDIO_ZEROPAGE if every page of the run is a zero page, else
 * one UFFDIO_COPY of the whole run from a staging buffer (its zero pages
 * memset there and copied as data). Install mode "continue" splits the
 * same way (pwritev + UFFDIO_CONTINUE, or UFFDIO_ZEROPAGE, per run). With
 * zero pages left holes (the default on base pages, PageInstaller::Holes)
 * a run splits again at its zero pages: one call per stretch of data pages,
 * and a zero page is a mark in a table, no call.
 *
 * So a message's cost is not its pages × a per-page figure: a run of one
 * page pays a whole call, and without holes a zero page between data pages
 * of a run is installed as data. `ppsim calibrate` measures the native
 * stream in runs of a whole frame (`stream_ns_per_page*`,
 * src/sim/host-cpu.ts; CALIBRATED_RUN_PAGES); it also times runs of 1, 2, 4
 * and 16 pages and fits wall per page = per page + per call / run length
 * (src/real/calibrate-runs.ts). The optional keys here are the fitted
 * per-call parts, ns:
 * - `stream_ns_per_run`, `stream_ns_per_zero_run`: a run with data, and a
 *   run of zero pages only, before the destination's guest runs (pwritev);
 * - `stream_ns_per_run_running`, `stream_ns_per_zero_run_running`: the same
 *   once it runs (UFFDIO_COPY, UFFDIO_ZEROPAGE).
 * The per-page keys keep their meaning (the wall per page in calibrate's
 * runs of CALIBRATED_RUN_PAGES = R), so a run of n pages costs
 *   per call + n × (per page − per call / R)
 * — exactly what it cost before for a run of R; a hole costs the zero
 * page's figure, which calibrate's streams measure with holes too. Each pair
 * goes together. A profile without a pair charges that phase per page as
 * before (a message's zero pages at the zero page's rate wherever they are).
 */

import { batchPagesFor, DEFAULT_OPTIONS } from "../engine/options.js";
import { optionalCostError } from "./host-keys.js";

/**
 * The run length `stream_ns_per_page*` are measured with: calibrate's streams
 * send whole frames of the engine's default batch at 4 KiB pages, each one
 * run (src/real/calibrate-bulk.ts; 16-page frames until stop 31, which moves
 * a run of 16 by < 2 % of its per-page charge at the shipped fit).
 */
export const CALIBRATED_RUN_PAGES = batchPagesFor(DEFAULT_OPTIONS, 4096);

export interface HostRuns {
  stream_ns_per_run?: number;
  stream_ns_per_zero_run?: number;
  stream_ns_per_run_running?: number;
  stream_ns_per_zero_run_running?: number;
}

export const RUN_KEYS = ["stream_ns_per_run", "stream_ns_per_zero_run", "stream_ns_per_run_running", "stream_ns_per_zero_run_running"] as const;

/** A message's install calls as the native receiver makes them. */
export interface InstallRuns {
  /** Runs with at least one data page (pwritev or UFFDIO_COPY), and the pages in them (their zero pages too). */
  dataRuns: number;
  dataRunPages: number;
  /** Runs of zero pages only (UFFDIO_ZEROPAGE once the guest runs), and their pages. */
  zeroRuns: number;
  zeroRunPages: number;
  /** Zero pages left holes (zero holes on): marked, no install call of their own. */
  holePages: number;
}

/**
 * The page size at or below which the real destination leaves zero pages
 * holes (its default: install mode "copy" on the host's base pages,
 * native/src/zero_holes.h; hugetlbfs has no UFFDIO_ZEROPAGE, so a guest on
 * huge pages installs its zero pages). The simulator assumes the real back
 * end's defaults: a run with `PPSIM_ZERO_HOLES=0` or install mode
 * "continue" installs its zero pages and is charged as without holes only
 * on pages larger than this.
 */
export const ZERO_HOLE_MAX_PAGE = 4096;

/**
 * Splits a pages message as PageInstaller::Install does: a run ends where
 * the next entry's page number is not the previous one + 1 (entries out of
 * order or repeated start a new run); `data[i] === null`: page i is a zero
 * page. `holes`: zero pages are left holes (PageInstaller::Holes), so a run
 * splits again into stretches of data pages, one install call each, and
 * zero pages that cost no call.
 */
export function installRuns(pages: ArrayLike<number>, data: ArrayLike<unknown>, holes = false): InstallRuns {
  const r: InstallRuns = { dataRuns: 0, dataRunPages: 0, zeroRuns: 0, zeroRunPages: 0, holePages: 0 };
  let i = 0;
  while (i < pages.length) {
    let j = i + 1;
    while (j < pages.length && pages[j] === pages[j - 1] + 1) j++;
    if (holes) {
      for (let k = i; k < j; ) {
        const zero = data[k] === null;
        let m = k + 1;
        while (m < j && (data[m] === null) === zero) m++;
        if (zero) r.holePages += m - k;
        else {
          r.dataRuns++;
          r.dataRunPages += m - k;
        }
        k = m;
      }
      i = j;
      continue;
    }
    let allZero = true;
    for (let k = i; k < j && allZero; k++) allZero = data[k] === null;
    if (allZero) {
      r.zeroRuns++;
      r.zeroRunPages += j - i;
    } else {
      r.dataRuns++;
      r.dataRunPages += j - i;
    }
    i = j;
  }
  return r;
}

/** Checks the optional run keys (`o` is a parsed profile); the first wrong one's sentence, or null. */
export function runKeyError(o: Record<string, unknown>, max: number): string | null {
  const bad = optionalCostError(o, RUN_KEYS, max);
  if (bad !== null) return bad;
  for (const [a, b] of [["stream_ns_per_run", "stream_ns_per_zero_run"], ["stream_ns_per_run_running", "stream_ns_per_zero_run_running"]] as const) {
    if ((o[a] === undefined) !== (o[b] === undefined)) return `"${a}" and "${b}" go together (ppsim calibrate writes both)`;
  }
  return null;
}

/**
 * The stream's wall time for a message's runs, ns, or null when the profile
 * has no run keys for this phase (the caller charges per page). `pageNs`,
 * `zeroNs`: the phase's per-page figures (runs of CALIBRATED_RUN_PAGES).
 */
export function runsWallNs(h: HostRuns, runs: InstallRuns, running: boolean, pageNs: number, zeroNs: number): number | null {
  const call = running ? h.stream_ns_per_run_running : h.stream_ns_per_run;
  const zeroCall = running ? h.stream_ns_per_zero_run_running : h.stream_ns_per_zero_run;
  if (call === undefined || zeroCall === undefined) return null;
  // What a page adds to its run; ≥ 0 (a noisy fit could make the call dearer than a calibrated run of it).
  const perPage = Math.max(0, pageNs - call / CALIBRATED_RUN_PAGES);
  const perZero = Math.max(0, zeroNs - zeroCall / CALIBRATED_RUN_PAGES);
  // A hole costs what a zero page cost in calibrate's streams, whose receiver leaves holes too (calibrate-bulk.ts).
  return runs.dataRuns * call + runs.dataRunPages * perPage + runs.zeroRuns * zeroCall + runs.zeroRunPages * perZero + runs.holePages * zeroNs;
}
