/** Progress and ETA of a long sweep, on stderr: one rewritten line on a terminal, a line every few seconds elsewhere. */

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${Math.round(s)}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(Math.round(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export class Progress {
  private readonly started = Date.now();
  private lastPrint = 0;

  constructor(
    private readonly total: number,
    private readonly write: (text: string) => void,
    private readonly tty: boolean,
    private readonly label: string,
  ) {}

  /** `done` runs finished out of the total. */
  update(done: number): void {
    const now = Date.now();
    const last = done === this.total;
    if (!last && now - this.lastPrint < (this.tty ? 200 : 5000)) return;
    this.lastPrint = now;
    const elapsed = (now - this.started) / 1000;
    const rate = done / Math.max(elapsed, 1e-3);
    const eta = last ? "done" : `ETA ${formatDuration((this.total - done) / rate)}`;
    const line = `${this.label}: ${done}/${this.total} runs (${((100 * done) / Math.max(1, this.total)).toFixed(0)} %), ${formatDuration(elapsed)} elapsed, ${(rate * 3600).toFixed(0)} runs/h, ${eta}`;
    this.write(this.tty ? `\r${line}\x1b[K${last ? "\n" : ""}` : `${line}\n`);
  }

  get elapsedS(): number {
    return (Date.now() - this.started) / 1000;
  }
}
