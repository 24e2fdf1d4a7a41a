/**
 * Progress on stderr for runs whose stdout is one result (--json, compare),
 * so a long run is not silent: on a terminal one line rewritten in place and
 * cleared at the end; into a pipe or a log, plain lines (or none, quiet).
 * A simulation advanced in steps ends exactly as one run to its end, so
 * `runShowingProgress` steps it and shows a progress line once a second.
 */
import type { Report } from "../engine/report.js";
import type { Simulation } from "../sim/simulation.js";
import { progressLine } from "../../tui/plain.js";
export interface ProgressOptions {
  write: (text: string) => void;
  /** Rewrite one line in place (stderr is a terminal). */
  tty: boolean;
  /** Not a terminal: write nothing. */
  quietUnlessTty?: boolean;
}

export class StderrProgress {
  private shown = false;

  constructor(private readonly o: ProgressOptions) {}

  /** `transient`: a line only worth showing in place ("running…"), not in a log. */
  show(line: string, transient = false): void {
    if (this.o.tty) {
      this.o.write(`\r\x1b[2K${line}`);
      this.shown = true;
    } else if (!this.o.quietUnlessTty && !transient) this.o.write(`${line}\n`);
  }

  /** Clears the line on a terminal. */
  end(): void {
    if (this.shown) this.o.write("\r\x1b[2K");
    this.shown = false;
  }
}

/** stderr: lines on a terminal; into a pipe only when `pipe` (compare, whose runs are several). */
export function stderrProgress(pipe = false): StderrProgress {
  return new StderrProgress({ write: (t) => process.stderr.write(t), tty: process.stderr.isTTY === true, quietUnlessTty: !pipe });
}

/** Runs a simulation to its end, a line of progress on `progress` every `everyMs` of wall time. */
export function runShowingProgress(sim: Simulation, progress: StderrProgress, label: string, everyMs = 1000): Report {
  let next = performance.now() + everyMs;
  while (!sim.done) {
    sim.advanceTo(sim.nowMs + 500);
    const now = performance.now();
    if (now >= next) {
      next = now + everyMs;
      progress.show(`${label} ${progressLine(sim.snapshot(), null)}`, true);
    }
  }
  return sim.report() as Report;
}
