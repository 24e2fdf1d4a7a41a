/**
 * `ppsim calibrate`'s cost per install call (src/sim/host-runs.ts): the
 * native receiver installs a pages frame one run of consecutive pages at a
 * time, one system call a run (pwritev before the guest runs; UFFDIO_COPY,
 * or UFFDIO_ZEROPAGE for a run of zero pages only, once it runs). The
 * native stream of calibrate-bulk.ts is timed with its 16-page frames split
 * into runs of 1, 2, 4 and 16 pages (a page left out between runs), data
 * and holes, before and after the destination's guest runs, and its wall
 * per page fitted as per page + per call / run length (least squares in
 * 1 / run length). The fit's per-call part is the profile's key; the sender
 * side's per-run work (its reads, one per run of data pages) is in the
 * stream's wall too, since the two threads run as a pipeline.
 *
 * Without the guest's vCPUs beside the stream (calibrate-cpu.ts has them for
 * the per-page figures): a call's cost is the kernel's, not the cores'
 * share, and the streams stay short (--cpu-only does not run these).
 */
import { bulkStream } from "./calibrate-bulk.js";

export const RUN_LENGTHS = [1, 2, 4, 16] as const;

export interface RunFit {
  /** The part of a run's wall time that does not grow with its length, ns (≥ 0). */
  perRunNs: number;
  /** What each page adds, ns. */
  perPageNs: number;
}

/** Least squares of wall per page = perPage + perRun / run over the points (two run lengths at least). */
export function fitRuns(points: readonly { run: number; nsPerPage: number }[]): RunFit {
  const xs = points.map((p) => 1 / p.run);
  const ys = points.map((p) => p.nsPerPage);
  const n = points.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  if (!(sxx > 0)) throw new RangeError("fitRuns: two different run lengths at least");
  const perRunNs = Math.max(0, sxy / sxx);
  return { perRunNs, perPageNs: my - perRunNs * mx };
}

export interface RunCosts {
  /** Before the destination's guest runs (pwritev): a run with data, a run of holes. */
  data: RunFit;
  zero: RunFit;
  /** Once it runs (UFFDIO_COPY, UFFDIO_ZEROPAGE). */
  dataRunning: RunFit;
  zeroRunning: RunFit;
  /** Each stream's wall per page, ns, by shape and run length: what the fits were made of. */
  points: Record<string, Record<number, number>>;
}

/** Streams of `pages` pages (a multiple of 16) in each shape and run length, run lengths interleaved. */
export async function runCosts(pages: number): Promise<RunCosts> {
  const shapes = { data: {}, zero: { holes: true }, dataRunning: { running: true }, zeroRunning: { holes: true, running: true } } as const;
  const points: Record<string, Record<number, number>> = {};
  for (const run of RUN_LENGTHS)
    for (const [name, shape] of Object.entries(shapes)) {
      const b = await bulkStream(pages, false, { ...shape, runPages: run });
      (points[name] ??= {})[run] = b.wallNsPerPage;
    }
  const fit = (name: string) => fitRuns(RUN_LENGTHS.map((run) => ({ run, nsPerPage: points[name][run] })));
  return { data: fit("data"), zero: fit("zero"), dataRunning: fit("dataRunning"), zeroRunning: fit("zeroRunning"), points };
}
