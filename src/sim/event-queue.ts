/**
 * The simulator's agenda: a binary min-heap ordered by (time, insertion
 * sequence), so events at the same virtual time fire in the order they were
 * scheduled and a run is reproducible.
 *
 * The heap is three parallel arrays (times, sequence numbers, events) rather
 * than an array of entry objects: a run pushes and pops millions of events,
 * and this way an event costs the queue no allocation of its own.
 */
export class EventQueue<E> {
  private times: Float64Array = new Float64Array(64);
  private seqs: Float64Array = new Float64Array(64);
  private events: (E | undefined)[] = [];
  private n = 0;
  private seq = 0;
  /** Time of the event the last `popEvent` returned. */
  poppedTime = 0;

  get size(): number {
    return this.n;
  }

  /** Time of the earliest event, or Infinity when there is none. */
  peekTime(): number {
    return this.n === 0 ? Infinity : this.times[0];
  }

  push(time: number, event: E): void {
    if (Number.isNaN(time)) throw new Error("event time is NaN");
    if (this.n === this.times.length) this.grow();
    const times = this.times;
    const seqs = this.seqs;
    const events = this.events;
    const seq = this.seq++;
    let i = this.n++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent];
      if (!(time < pt || (time === pt && seq < seqs[parent]))) break;
      times[i] = pt;
      seqs[i] = seqs[parent];
      events[i] = events[parent];
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    events[i] = event;
  }

  /** Removes and returns the earliest event with its time. */
  pop(): { time: number; event: E } | undefined {
    if (this.n === 0) return undefined;
    const event = this.popEvent() as E;
    return { time: this.poppedTime, event };
  }

  /** Removes and returns the earliest event (its time in `poppedTime`), or undefined when there is none. */
  popEvent(): E | undefined {
    if (this.n === 0) return undefined;
    const times = this.times;
    const seqs = this.seqs;
    const events = this.events;
    const top = events[0];
    this.poppedTime = times[0];
    const n = --this.n;
    const lastTime = times[n];
    const lastSeq = seqs[n];
    const last = events[n];
    events[n] = undefined;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let child = l;
        if (r < n && (times[r] < times[l] || (times[r] === times[l] && seqs[r] < seqs[l]))) child = r;
        const ct = times[child];
        if (!(ct < lastTime || (ct === lastTime && seqs[child] < lastSeq))) break;
        times[i] = ct;
        seqs[i] = seqs[child];
        events[i] = events[child];
        i = child;
      }
      times[i] = lastTime;
      seqs[i] = lastSeq;
      events[i] = last;
    }
    return top;
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2);
    times.set(this.times);
    this.times = times;
    const seqs = new Float64Array(this.seqs.length * 2);
    seqs.set(this.seqs);
    this.seqs = seqs;
  }
}
