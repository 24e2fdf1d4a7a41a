/**
 * The bandwidth cap as a token bucket: `delay(bytes, now)` says how long a
 * send of that size must wait (0: send now), `spend` takes the tokens. Only
 * background pages are paced; a demand reply is never held back.
 */
export class Pacer {
  private tokens = 0;
  /** When tokens were last added: the bucket fills from the migration's start, wherever the driver's clock begins. */
  private at: number | null = null;
  /** Bytes per µs; 0 = unlimited. */
  private readonly rate: number;
  /**
   * What the bucket holds at most: the burst, or the largest send asked about if larger. It never
   * shrinks: a sender asks for its worst message and then spends what it made (a batch of mostly
   * zero pages is far smaller), and clamping to that would throw away the tokens it waited for.
   */
  private cap: number;

  constructor(
    bytesPerSec: number,
    /** The most that may go at once after an idle spell (a message larger than this still goes, alone). */
    private readonly burstBytes: number,
  ) {
    this.rate = bytesPerSec / 1e6;
    this.cap = burstBytes;
  }

  /** The bucket starts full at the migration's start: one burst may go at once. */
  start(now: number): void {
    if (this.at !== null) return;
    this.at = now;
    this.tokens = this.burstBytes;
  }

  /** µs until `bytes` may be sent (0 = now). */
  delay(bytes: number, now: number): number {
    if (this.rate <= 0) return 0;
    this.refill(now, bytes);
    return this.tokens >= bytes ? 0 : Math.ceil((bytes - this.tokens) / this.rate);
  }

  spend(bytes: number, now: number): void {
    if (this.rate <= 0) return;
    this.refill(now, bytes);
    this.tokens -= bytes;
  }

  private refill(now: number, bytes: number): void {
    if (this.at === null) this.start(now);
    this.cap = Math.max(this.cap, bytes);
    const at = this.at as number;
    if (now > at) this.tokens += (now - at) * this.rate;
    this.tokens = Math.min(this.cap, this.tokens);
    this.at = Math.max(at, now);
  }
}
