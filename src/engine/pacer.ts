/**
 * The bandwidth cap as a token bucket: `delay(bytes, now)` says how long a
 * send of that size must wait (0: send now), `spend` takes the tokens. Only
 * background pages are paced; a demand reply is never held back.
 */
export class Pacer {
  private tokens = 0;
  private at: number;
  /** Bytes per µs; 0 = unlimited. */
  private readonly rate: number;

  constructor(
    bytesPerSec: number,
    /** The most that may go at once after an idle spell (a message larger than this still goes, alone). */
    private readonly burstBytes: number,
    now = 0,
  ) {
    this.rate = bytesPerSec / 1e6;
    this.at = now;
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
    const cap = Math.max(this.burstBytes, bytes);
    if (now > this.at) this.tokens += (now - this.at) * this.rate;
    this.tokens = Math.min(cap, this.tokens);
    this.at = Math.max(this.at, now);
  }
}
