/**
 * The engine's timers, by name (the shape of quinn-proto's TimerTable): a
 * deadline per timer or none. `pollTimeout` is a query over the table, so a
 * driver can never act on a stale timer: it asks for the earliest deadline,
 * and on reaching it hands the time back; the engine then looks up which
 * timers are due.
 */
export class TimerTable<Name extends string> {
  private readonly at = new Map<Name, number>();
  /** `next()`'s answer, kept between changes: a driver asks after every input, timers change far less often. */
  private earliest: number | null = null;
  private stale = false;

  set(name: Name, at: number): void {
    this.at.set(name, at);
    this.stale = true;
  }

  clear(name: Name): void {
    if (this.at.delete(name)) this.stale = true;
  }

  clearAll(): void {
    this.at.clear();
    this.stale = true;
  }

  isSet(name: Name): boolean {
    return this.at.has(name);
  }

  /** The earliest deadline, or null when no timer is set. */
  next(): number | null {
    if (!this.stale) return this.earliest;
    this.stale = false;
    if (this.at.size === 0) return (this.earliest = null);
    let min = Infinity;
    for (const t of this.at.values()) if (t < min) min = t;
    return (this.earliest = min);
  }

  /** Removes and returns the timers due at `now`, earliest first. */
  expire(now: number): Name[] {
    const due = [...this.at.entries()].filter(([, t]) => t <= now).sort((a, b) => a[1] - b[1]);
    for (const [name] of due) this.at.delete(name);
    if (due.length > 0) this.stale = true;
    return due.map(([name]) => name);
  }
}
