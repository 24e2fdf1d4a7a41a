/**
 * The simulator's agenda: a binary min-heap ordered by (time, insertion
 * sequence), so events at the same virtual time fire in the order they were
 * scheduled and a run is reproducible.
 */
interface Entry<E> {
  time: number;
  seq: number;
  event: E;
}

export class EventQueue<E> {
  private readonly heap: Entry<E>[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  /** Time of the earliest event, or Infinity when there is none. */
  peekTime(): number {
    return this.heap.length === 0 ? Infinity : this.heap[0].time;
  }

  push(time: number, event: E): void {
    if (Number.isNaN(time)) throw new Error("event time is NaN");
    const heap = this.heap;
    const entry: Entry<E> = { time, seq: this.seq++, event };
    let i = heap.length;
    heap.push(entry);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(entry, heap[parent])) break;
      heap[i] = heap[parent];
      i = parent;
    }
    heap[i] = entry;
  }

  /** Removes and returns the earliest event with its time. */
  pop(): { time: number; event: E } | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0];
    const last = heap.pop() as Entry<E>;
    const n = heap.length;
    if (n > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const child = r < n && before(heap[r], heap[l]) ? r : l;
        if (!before(heap[child], last)) break;
        heap[i] = heap[child];
        i = child;
      }
      heap[i] = last;
    }
    return top;
  }
}

function before<E>(a: Entry<E>, b: Entry<E>): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
