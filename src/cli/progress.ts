/**
 * Progress on stderr for runs whose stdout is one result (--json, compare),
 * so a long run is not silent: on a terminal one line rewritten in place and
 * cleared at the end; into a pipe or a log, plain lines (or none, quiet).
 * A simulation is run in one call to its end (advancing it in steps can
 * change it in detail, and --json must be exact), so progress is per run.
 */
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
