/**
 * How fast the bulk lane drains, measured from when the driver pulls from it:
 * a driver pulls only when its lane has room, so while the source always has
 * a page ready, bytes pulled follow bytes that left. Two things would bias
 * that and are left out: the burst that fills an empty lane's window (pulled
 * at one instant, it says nothing about the link), and the time the source
 * had nothing to send (a starved lane drains and idles).
 *
 * A "streak" starts at the first pull after starving; its first instant's
 * bytes are not counted, every later pull's are, over the streak's span.
 */
export class ThroughputEstimator {
  private bytes = 0;
  private spanUs = 0;
  private streak: { startAt: number; lastAt: number; bytes: number } | null = null;

  onPull(bytes: number, now: number): void {
    const s = this.streak;
    if (s === null) {
      this.streak = { startAt: now, lastAt: now, bytes: 0 };
      return;
    }
    if (now === s.startAt) return; // still the window-filling burst
    s.bytes += bytes;
    s.lastAt = now;
  }

  /** The source had nothing to send when the lane had room: the streak ends. */
  onStarved(): void {
    const s = this.streak;
    if (s === null) return;
    this.bytes += s.bytes;
    this.spanUs += s.lastAt - s.startAt;
    this.streak = null;
  }

  /** Bytes per µs; Infinity until anything was measured. */
  get bytesPerUs(): number {
    const s = this.streak;
    const bytes = this.bytes + (s?.bytes ?? 0);
    const span = this.spanUs + (s ? s.lastAt - s.startAt : 0);
    return span > 0 && bytes > 0 ? bytes / span : Infinity;
  }
}
