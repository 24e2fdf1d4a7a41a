/**
 * The engine's timers, by name (the shape of quinn-proto's TimerTable): a
 * deadline per timer or none. `pollTimeout` is a query over the table, so a
 * driver can never act on a stale timer: it asks for the earliest deadline,
 * and on reaching it hands the time back; the engine then looks up which
 * timers are due.
 */
export class TimerTable<Name extends string> {
  private readonly at = new Map<Name, number>();

  set(name: Name, at: number): void {
    this.at.set(name, at);
  }

  clear(name: Name): void {
    this.at.delete(name);
  }

  clearAll(): void {
    this.at.clear();
  }

  isSet(name: Name): boolean {
    return this.at.has(name);
  }

  /** The earliest deadline, or null when no timer is set. */
  next(): number | null {
    if (this.at.size === 0) return null;
    let min = Infinity;
    for (const t of this.at.values()) if (t < min) min = t;
    return min;
  }

  /** Removes and returns the timers due at `now`, earliest first. */
  expire(now: number): Name[] {
    const due = [...this.at.entries()].filter(([, t]) => t <= now).sort((a, b) => a[1] - b[1]);
    for (const [name] of due) this.at.delete(name);
    return due.map(([name]) => name);
  }
}
